"""Release goes through delivery: the account's quota, the delivery log line, one session code.

A real ``serve`` in capture mode releases to a real upstream whose account allows one message.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import aiohttp
import pytest
from served import Served, mail
from upstream import FakeUpstream


@pytest.fixture(scope="module")
def upstream() -> Iterator[FakeUpstream]:
    with FakeUpstream() as server:
        yield server


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory, upstream: FakeUpstream) -> Iterator[Served]:
    server = {
        "host": "127.0.0.1",
        "port": upstream.port,
        "tls": "none",
        "quota": {"messages": 1},
    }
    release = {"allowed": ["*@example.org"], "upstream": server}
    with Served(
        tmp_path_factory.mktemp("release"), capture={"path": "mail", "release": release}
    ) as s:
        yield s


async def release(served: Served, queue_id: str) -> tuple[int, dict]:
    url = f"{served.url}/api/v1/messages/{queue_id}/release"
    async with (
        aiohttp.ClientSession() as http,
        http.post(url, json={"to": ["carol@example.org"]}) as response,
    ):
        return response.status, await response.json()


async def test_release_logs_the_delivery_line_and_counts_against_the_quota(
    served, upstream
) -> None:
    first = await served.send(mail("first release"))
    status, released = await release(served, first)
    assert status == 200 and released["released"]
    line = (
        rf"{first}: to=<carol@example\.org>, relay=127\.0\.0\.1\[127\.0\.0\.1\]:{upstream.port}, "
    )
    assert re.search(line + r".*status=sent \(250 ", served.log.read_text())

    second = await served.send(mail("second release"))
    status, refused = await release(served, second)
    assert status == 502 and not refused["released"]
    (attempt,) = refused["attempts"]
    assert attempt["status"] == "deferred"
    assert "waiting for the sending quota" in attempt["reply"]
    assert [m.recipients for m in upstream.messages if b"second release" in m.content] == []
