"""Out-of-range numbers in a search: 400 with the column over HTTP, exit 2 on the CLI."""

from __future__ import annotations

import aiohttp
import pytest
import tracmail

from relay.cli.main import main

QUERIES = [
    "larger:9999999999999999999999M",
    "newer_than:99999999999d",
    "after:99999999999999999999",
]


@pytest.mark.parametrize("query", QUERIES)
async def test_the_api_answers_400_with_the_query_error(query, make_config, start_relay) -> None:
    relay = await start_relay(make_config())
    async with aiohttp.ClientSession(relay.web.url) as http:
        for path in ("api/v1/messages", "api/v1/messages/wait"):
            async with http.get(path, params={"q": query, "timeout": "0"}) as response:
                body = await response.json()
                assert response.status == 400, body
            assert body["query"] == query and body["column"] == query.index(":") + 2
        async with http.delete("api/v1/messages", params={"q": query}) as response:
            assert response.status == 400


@pytest.mark.parametrize("query", QUERIES)
def test_mail_list_exits_2_with_the_query_error(query, tmp_path, capsys) -> None:
    root = tmp_path / "mail"
    tracmail.fill(root, 2)
    assert main(["mail", "list", "--store", str(root), "-q", query]) == 2
    error = capsys.readouterr().err
    assert query in error and "expected" in error and "Traceback" not in error
