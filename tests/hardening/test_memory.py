"""Memory under concurrent maximal messages (security reference D.29).

20 clients each upload a message just under a 5 MB size limit at the same time; the relay
runs as its own process and its peak RSS (``VmHWM``) must stay within a stated budget:

* relay mode: at most 4 x the size limit per concurrent upload above the idle process
  (measured: about 3 x summed over the processes - the DATA buffer, the record, and each
  process's own peak);
* capture mode: at most 6 x (measured: about 5 x - the capture index parses the message).

So a relay with ``max_message_size: 25 MB`` and ``max_connections: 20`` needs about
2 GB for the worst moment of relay mode; lower ``max_connections`` to bound it further.
"""

from __future__ import annotations

import asyncio

import aiosmtplib
import pytest

from .misbehave import Upstream
from .processes import memory_kib

pytestmark = pytest.mark.slow

LIMIT = 5 * 2**20
CLIENTS = 20
#: Peak RSS above the idle process, per concurrent upload, in units of the size limit.
BUDGET = {"relay": 4.0, "capture": 6.0}


def maximal(number: int) -> bytes:
    """A message just under the limit, in 76-octet lines (base64's shape, the most lines)."""
    head = b"From: trac@example.org\r\nTo: dev@example.org\r\nSubject: big %d\r\n\r\n" % number
    return head + (b"x" * 76 + b"\r\n") * ((LIMIT - 4096) // 78)


async def settled(pid: int) -> int:
    """The relay's memory once start-up is over: a split relay's listening socket is bound
    before its processes have started, so wait until the sum stops growing."""
    before, now = -1, memory_kib(pid)
    for _ in range(60):
        if now - before < 256:  # KiB, over half a second
            break
        await asyncio.sleep(0.5)
        before, now = now, memory_kib(pid)
    return now


async def upload(port: int, number: int) -> str:
    async with aiosmtplib.SMTP(hostname="127.0.0.1", port=port, timeout=120) as client:
        errors, reply = await client.sendmail(
            "trac@example.org", ["dev@example.org"], maximal(number)
        )
    assert errors == {}
    return reply


@pytest.mark.parametrize("mode", ["relay", "capture"])
async def test_concurrent_maximal_messages_stay_within_the_rss_budget(relay_process, mode):
    with Upstream() as upstream:
        limits = {"max_message_size": LIMIT, "max_connections": CLIENTS}
        sections = {"limits": {**limits, "max_connections_per_client": CLIENTS}}
        if mode == "relay":
            sections["upstream"] = {"host": "127.0.0.1", "port": upstream.port, "tls": "none"}
        relay = relay_process(**sections)
        idle = await settled(relay.pid)
        replies = await asyncio.gather(*(upload(relay.port, n) for n in range(CLIENTS)))
        assert all(reply.startswith("2.0.0") for reply in replies)
        if mode == "relay":
            while len(upstream.messages) < CLIENTS:  # delivery is part of the bound too
                await asyncio.sleep(0.1)
        growth = (memory_kib(relay.pid) - idle) * 1024
    per_upload = growth / CLIENTS / LIMIT
    print(f"\n{mode}: peak RSS {growth / 2**20:.0f} MB over idle, {per_upload:.1f} x per upload")
    assert per_upload <= BUDGET[mode]
