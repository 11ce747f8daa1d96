"""Helpers for tests that push mail through the in-process relay to an upstream and count
what came out the other side.

The relay under test delivers over one upstream connection, so the queue is worked in
arrival order: once a *barrier* message submitted after an attack has reached the
upstream, everything the attack could have queued has been tried too.
"""

from __future__ import annotations

import asyncio
import itertools
from typing import Any

import aiosmtplib
from upstream import FakeUpstream, Received

from relay.queue.spool import QueueState
from relay.service import Relay

__all__ = ["barrier", "queued", "submit", "upstream_section", "wait_for"]

_BARRIERS = itertools.count(1)


def upstream_section(upstream: FakeUpstream, **extra: Any) -> dict[str, Any]:
    """The ``upstream:`` config for a plain-text test upstream, one connection."""
    return {"host": "127.0.0.1", "port": upstream.port, "tls": "none", "connections": 1, **extra}


def queued(relay: Relay) -> dict[str, list[str]]:
    """Queue ids per state directory that holds any (``{}``: the queue is empty)."""
    assert relay.manager is not None
    spool = relay.manager.spool
    found = {state.value: spool.ids(state) for state in QueueState}
    return {state: ids for state, ids in found.items() if ids}


async def submit(
    port: int,
    message: bytes,
    *,
    sender: str = "trac@example.org",
    recipients: tuple[str, ...] = ("dev@example.org",),
) -> str:
    """Send one message with aiosmtplib; return the reply text to the final dot."""
    async with aiosmtplib.SMTP(hostname="127.0.0.1", port=port, timeout=10) as client:
        errors, reply = await client.sendmail(sender, list(recipients), message)
    assert errors == {}, errors
    return reply


async def wait_for(predicate: Any, timeout: float = 15.0, step: float = 0.02) -> Any:
    """Poll ``predicate()`` until it is truthy; fail after ``timeout`` seconds."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not (result := predicate()):
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(step)
    return result


async def barrier(port: int, upstream: FakeUpstream, timeout: float = 15.0) -> list[Received]:
    """Submit a marker message, wait for it upstream; return what arrived before it."""
    marker = f"barrier-{next(_BARRIERS)}".encode()
    await submit(port, b"Subject: " + marker + b"\r\n\r\n" + marker + b"\r\n")

    def arrived() -> int | None:
        for index, message in enumerate(list(upstream.messages)):
            if marker in message.content:
                return index + 1
        return None

    count = await wait_for(arrived, timeout)
    return [m for m in upstream.messages[: count - 1] if b"Subject: barrier-" not in m.content]
