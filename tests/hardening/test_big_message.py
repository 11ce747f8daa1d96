"""One crafted message (tens of thousands of MIME parts) neither freezes the relay nor
takes long to open: the detail is computed off the event loop, reads a bounded number of
parts and says how many it left out."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import aiohttp
import pytest
from served import Served

from relay.capture.message import MAX_PARTS

PARTS = 20_000


def many_parts(count: int) -> bytes:
    """A multipart/mixed message of ``count`` one-line text parts (~36 octets each)."""
    head = (
        b"From: trac@example.org\r\nTo: bob@example.org\r\nSubject: many parts\r\n"
        b"MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n"
    )
    part = b"--b\r\nContent-Type: text/plain\r\n\r\nx\r\n"
    return head + part * count + b"--b--\r\n"


@pytest.fixture
def served(tmp_path) -> Iterator[Served]:
    with Served(tmp_path) as server:
        yield server


async def greeting_delay(port: int) -> float:
    """Seconds from connecting to the SMTP listener until its 220 greeting line."""
    started = time.monotonic()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    line = await asyncio.wait_for(reader.readline(), 60)
    delay = time.monotonic() - started
    writer.close()
    assert line.startswith(b"220"), line
    return delay


async def test_opening_a_message_of_many_parts_keeps_smtp_answering(served) -> None:
    queue_id = await served.send(many_parts(PARTS), ["bob@example.org"])
    async with aiohttp.ClientSession(served.url) as http:

        async def detail() -> tuple[float, dict]:
            started = time.monotonic()
            async with http.get(f"/api/v1/messages/{queue_id}") as response:
                assert response.status == 200
                return time.monotonic() - started, await response.json()

        opening = asyncio.create_task(detail())
        delays = []
        while not opening.done() and len(delays) < 20:
            await asyncio.sleep(0.05)
            delays.append(await greeting_delay(served.smtp_port))
        took, body = await opening
    assert max(delays) < 0.1, delays
    assert took < 3.0
    listed = body["attachments"]
    assert len(listed) == MAX_PARTS - 1 and body["parts_omitted"] == PARTS - MAX_PARTS
    assert body["raw_url"] == f"/api/v1/messages/{queue_id}/raw"


async def store_and_open(served: Served, message: bytes) -> tuple[float, float, dict]:
    """Seconds to store ``message`` (until the 250) and to open its detail, and the detail."""
    started = time.monotonic()
    queue_id = await served.send(message, ["bob@example.org"])
    stored = time.monotonic() - started
    async with aiohttp.ClientSession(served.url) as http:
        started = time.monotonic()
        async with http.get(f"/api/v1/messages/{queue_id}", timeout=None) as response:
            assert response.status == 200
            body = await response.json()
    return stored, time.monotonic() - started, body


def many_addresses(count: int) -> bytes:
    """A message whose one To field names ``count`` addresses (~20 octets each), folded."""
    to = b",\r\n ".join(b"u%d@example.org" % i for i in range(count))
    return b"From: trac@example.org\r\nTo: " + to + b"\r\nSubject: many\r\n\r\nhello\r\n"


async def test_a_field_of_many_addresses_is_stored_and_opened_in_bounded_time(served) -> None:
    """The stdlib address parsers take time quadratic in a field's length (gh-136063):
    100,000 addresses (2 MB) took 10 s to index and minutes to open."""
    stored, opened, body = await store_and_open(served, many_addresses(100_000))
    async with (
        aiohttp.ClientSession(served.url) as http,
        http.get("/api/v1/messages", params={"q": "to:u7@example.org"}) as response,
    ):
        found = [item["id"] for item in (await response.json())["messages"]]
    assert stored < 4.0 and opened < 3.0, (stored, opened)
    to = dict(body["headers"])["To"]
    assert to.startswith("u0@example.org, u1@example.org") and to.endswith("u99999@example.org")
    assert found == [body["id"]]


def many_parameters(count: int) -> bytes:
    """An attachment whose Content-Disposition carries ``count`` RFC 2231 filename sections."""
    sections = b"".join(b"\r\n filename*%d=a%%41;" % i for i in range(count))
    return (
        b"From: trac@example.org\r\nTo: bob@example.org\r\nSubject: params\r\n"
        b"MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n"
        b"--b\r\nContent-Type: application/octet-stream\r\n"
        b"Content-Disposition: attachment;" + sections + b"\r\n\r\nx\r\n--b--\r\n"
    )


async def test_a_part_field_of_many_parameters_is_stored_and_opened_in_bounded_time(
    served,
) -> None:
    """The stdlib reads RFC 2231 sections in time quadratic in their number, and
    policy.default parses a part's Content-Disposition anew on every access (some 65 per
    detail): 100,000 filename sections (2 MB) took 5 s to index and minutes to open."""
    stored, opened, body = await store_and_open(served, many_parameters(100_000))
    assert stored < 4.0 and opened < 3.0, (stored, opened)
    assert body["attachments"][0]["filename"].startswith("a%41a%41")
