"""Every file and directory of the capture store and the queue is owner-only, whatever the
umask (security reference: files holding mail are 0600/0700; the index holds subjects,
snippets and body words)."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest
from helpers import eventually, port_of

from relay.cli.main import main

from .flow import submit, upstream_section

MESSAGE = b"From: trac@example.org\r\nTo: dev@example.org\r\nSubject: #7 secret plans\r\n\r\nhi\r\n"


@pytest.fixture(params=[0o022, 0o000], ids=["umask022", "umask000"])
def umask(request) -> Iterator[int]:
    previous = os.umask(request.param)
    yield request.param
    os.umask(previous)


def shared(root: Path) -> list[str]:
    """Everything under ``root`` (and ``root``) that group or others may use."""
    found = [root, *root.rglob("*")]
    return [
        f"{path.relative_to(root.parent)} {stat.S_IMODE(path.lstat().st_mode):04o}"
        for path in found
        if not path.is_symlink() and path.lstat().st_mode & (stat.S_IRWXG | stat.S_IRWXO)
    ]


async def test_capture_store_and_queue_are_owner_only(
    umask, tmp_path, make_config, start_relay, upstream
) -> None:
    data = tmp_path / "data"  # missing: the relay creates it and everything under it
    config = make_config(
        upstream=upstream_section(upstream, quota={"messages": 100}),
        capture={"enabled": True, "path": str(data / "mail")},
        queue={"path": str(data / "queue")},
    )
    relay = await start_relay(config)
    await submit(port_of(relay), MESSAGE)
    await eventually(lambda: relay.capture.index.count() == 1)
    async with aiohttp.ClientSession(relay.web.url) as http:
        for path in ("api/v1/messages?q=secret", "readyz", "api/v1/queue"):
            async with http.get(path) as response:
                assert response.status == 200
    mail = data / "mail"
    assert {p.name for p in mail.iterdir()} >= {"index.sqlite3", "index.sqlite3-wal", "meta"}
    assert main(["mail", "reindex", "--store", str(mail)]) == 0
    assert not (found := shared(data)), "\n".join(found)


async def test_capture_mode_store_is_owner_only(umask, tmp_path, make_config, start_relay) -> None:
    relay = await start_relay(make_config(capture={"path": str(tmp_path / "new" / "mail")}))
    await submit(port_of(relay), MESSAGE)
    assert await eventually(lambda: relay.capture.search("secret").items)
    assert not (found := shared(tmp_path / "new")), found
