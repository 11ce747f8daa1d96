"""Release's allowlist decides on exactly the address that goes into ``RCPT TO``.

Each case goes through the JSON API of a real ``serve`` and through ``notify-relay mail
release`` against a real upstream; the assertion is on what the upstream received.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import aiohttp
import pytest
import tracmail
from aiosmtplib.email import parse_address
from hypothesis import given
from hypothesis import strategies as st
from served import Served, mail
from upstream import FakeUpstream

from relay.capture.release import ReleaseRefused, release_address
from relay.cli.main import main

ALLOWED = "*@example.org"

#: Addresses release must refuse: each one passes ``*@example.org`` as a raw string, or is
#: read by some parser (aiosmtplib's, the upstream's) as an address other than the text.
REFUSED = {
    "comment": "attacker@evil.test (@example.org",
    "comment-after": "bob@example.org (eve@evil.test)",
    "comma": "x@evil.test,@example.org",
    "list": "eve@evil.test, bob@example.org",
    "angle": "<eve@evil.test>bob@example.org",
    "display-name": "Bob <bob@example.org>",
    "brackets-only": "<bob@example.org>",
    "quoted-local": '"eve@evil.test"@example.org',
    "route": "@evil.test:bob@example.org",
    "route-final": "@example.org:eve@evil.test",
    "encoded-word": "=?utf-8?q?eve=40evil.test?=@example.org",
    "percent-hack": "eve%evil.test@example.org",
    "bang-path": "evil.test!eve@example.org",
    "address-literal": "bob@[127.0.0.1]",
    "non-ascii-domain": "bob@exämple.org",
    "trailing-dot": "bob@example.org.",
    "local-trailing-dot": "bob.@example.org",
    "space": "bob@example.org ",
    "crlf": "eve@evil.test\r\nRCPT TO:<bob@example.org>",
    "empty": "",
}
#: Plain addresses: released, and the upstream sees exactly this text.
ACCEPTED = {
    "case": "Carol@Example.ORG",
    "non-ascii-local": "jörg@example.org",
    "atext": "a.b+c_d-e{f}~g@sub.example.org",
}


@pytest.fixture(scope="module")
def upstream() -> Iterator[FakeUpstream]:
    with FakeUpstream() as server:
        yield server


def _release_section(upstream: FakeUpstream) -> dict:
    server = {"host": "127.0.0.1", "port": upstream.port, "tls": "none"}
    return {"allowed": [ALLOWED, "*@*.example.org"], "upstream": server}


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory, upstream: FakeUpstream) -> Iterator[Served]:
    directory = tmp_path_factory.mktemp("release")
    capture = {"path": "mail", "release": _release_section(upstream)}
    with Served(directory, capture=capture) as server:
        yield server


@pytest.fixture(scope="module")
def captured(tmp_path_factory: pytest.TempPathFactory, upstream: FakeUpstream) -> tuple[Path, str]:
    """A capture store with one message and a config releasing from it: (config, id)."""
    root = tmp_path_factory.mktemp("cli") / "mail"
    (queue_id,) = tracmail.fill(root, 1)
    config = root.parent / "relay.yaml"
    capture = {"path": str(root), "release": _release_section(upstream)}
    config.write_text(json.dumps({"capture": capture}))
    return config, queue_id


@pytest.fixture(params=["api", "cli"])
def release(
    request, served, captured, capsys
) -> Callable[[list[str]], Awaitable[tuple[bool, str]]]:
    """Release a captured message to ``to`` through the API or the CLI: (released, reason)."""

    async def through_api(to: list[str]) -> tuple[bool, str]:
        queue_id = await served.send(mail("release"))
        async with aiohttp.ClientSession(served.url) as http:
            url = f"/api/v1/messages/{queue_id}/release"
            async with http.post(url, json={"to": to}) as response:
                body = await response.json()
        assert response.status in (200, 400), body
        return response.status == 200 and body["released"], body.get("reason", "")

    async def through_cli(to: list[str]) -> tuple[bool, str]:
        config, queue_id = captured
        to_options = [arg for address in to for arg in ("--to", address)]
        argv = ["mail", "release", "-c", str(config), queue_id, *to_options]
        code = await asyncio.to_thread(main, argv)  # the CLI runs its own event loop
        err = capsys.readouterr().err
        assert code == 0 or "not released" in err
        return code == 0, err

    return through_api if request.param == "api" else through_cli


@pytest.mark.parametrize("address", REFUSED.values(), ids=REFUSED.keys())
async def test_what_is_not_one_plain_address_is_refused(release, upstream, address) -> None:
    before = len(upstream.messages)
    released, reason = await release([address])
    assert not released
    assert "plain address" in reason and repr(address) in reason
    assert len(upstream.messages) == before


@pytest.mark.parametrize("address", ACCEPTED.values(), ids=ACCEPTED.keys())
async def test_the_upstream_gets_exactly_the_checked_address(release, upstream, address) -> None:
    before = len(upstream.messages)
    released, _ = await release([address])
    assert released
    (received,) = upstream.wait_for(before + 1)[before:]
    assert received.recipients == [address]


async def test_one_bad_address_in_a_list_stops_the_whole_release(release, upstream) -> None:
    before = len(upstream.messages)
    released, reason = await release(["bob@example.org", REFUSED["comment"]])
    assert not released and repr(REFUSED["comment"]) in reason
    assert len(upstream.messages) == before


@given(
    local=st.from_regex(
        r"[A-Za-z0-9#$&'*+\-/=?^_`{|}~é]{1,20}(\.[A-Za-z0-9_é]{1,8}){0,2}", fullmatch=True
    ),
    domain=st.from_regex(r"[a-z0-9]{1,10}(\.[a-z0-9-]{0,8}[a-z0-9]){1,3}", fullmatch=True),
)
def test_every_accepted_address_reaches_aiosmtplib_unchanged(local: str, domain: str) -> None:
    """aiosmtplib's ``rcpt`` re-parses its argument: it must come out as what was checked."""
    try:
        address = release_address(f"{local}@{domain}")
    except ReleaseRefused:
        return
    assert parse_address(address) == address
