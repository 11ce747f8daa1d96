"""Numbers in a search that the first range checks missed, over real HTTP.

``AROUND n`` (bare and inside quotes) and epoch-second dates: a digit that is not an ASCII
decimal (``²``), a number too long for ``int()`` or one past what SQLite's FTS5 ``NEAR``
holds (a 32-bit int: 2147483648 wrapped and matched nothing) is a 400 naming the column,
never a 500 or a silently wrong answer; the largest distance allowed still finds the mail.
"""

from __future__ import annotations

import aiohttp
import aiosmtplib
import pytest
from helpers import eventually, port_of

from relay.gmail.parser import MAX_DISTANCE

MESSAGE = b"From: trac@example.org\r\nTo: bob@example.org\r\n\r\nhello there world\r\n"
BAD = [
    "hello AROUND ² world",
    "hello AROUND " + "9" * 5000 + " world",
    "hello AROUND 2147483648 world",
    '"hello AROUND 2147483648 world"',
    '"hello AROUND ' + "9" * 5000 + ' world"',
    "after:²³⁴⁵⁶",
]


@pytest.fixture
async def page(make_config, start_relay):
    relay = await start_relay(make_config())
    async with aiosmtplib.SMTP(hostname="127.0.0.1", port=port_of(relay)) as client:
        await client.sendmail("trac@example.org", ["bob@example.org"], MESSAGE)
    await eventually(lambda: relay.capture.index.count() == 1)
    async with aiohttp.ClientSession(relay.web.url) as http:
        yield http


@pytest.mark.parametrize("query", BAD, ids=range(len(BAD)))
async def test_a_number_out_of_range_is_a_400_with_its_column(page, query) -> None:
    async with page.get("api/v1/messages", params={"q": query}) as response:
        assert response.status == 400, await response.text()
        body = await response.json()
    assert body["query"] == query and body["column"] >= 1
    assert "int()" not in body["expected"]


@pytest.mark.parametrize("query", ["hello AROUND {} world", '"hello AROUND {} world"'])
async def test_the_largest_distance_still_matches(page, query) -> None:
    async with page.get("api/v1/messages", params={"q": query.format(MAX_DISTANCE)}) as response:
        assert response.status == 200
        assert (await response.json())["total"] == 1
