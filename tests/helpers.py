"""Small helpers shared by the integration tests."""

from __future__ import annotations

import asyncio
import errno
import os
import socket
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import aiosmtplib

from relay.receive.users import hash_password
from relay.service import Relay

#: Sample messages: real Trac output under trac/, the Gmail corpus.
FIXTURES = Path(__file__).parent / "fixtures"


def port_of(relay: Relay) -> int:
    """The TCP port the relay's first listener is bound to."""
    return int(relay.bound[0].rsplit(":", 1)[1])


async def eventually(predicate: Callable[[], Any], timeout: float = 10.0) -> Any:
    """Poll ``predicate`` until it returns something truthy."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        result = predicate()
        if result:
            return result
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.02)


#: A small Trac-like notification for tests that only need some message.
MESSAGE = b"From: trac@example.org\r\nTo: bob@example.org\r\nSubject: #1\r\n\r\nHello\r\n"


async def submit(
    relay: Relay, recipients: Sequence[str], *, sender: str = "trac@example.org"
) -> tuple[dict[str, Any], str]:
    """Send :data:`MESSAGE` to the relay's listener; aiosmtplib's (refused, reply)."""
    async with aiosmtplib.SMTP(hostname="127.0.0.1", port=port_of(relay)) as client:
        return await client.sendmail(sender, list(recipients), MESSAGE)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on (right now)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_port(port: int, timeout: float = 20.0) -> bool:
    """Block until something accepts connections on 127.0.0.1:``port``; False on timeout."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return True
        except OSError:
            time.sleep(0.05)
    return False


def fill(disk: Path) -> Path:
    """Write a filler file until the file system is full; return its path."""
    filler = disk / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        while True:
            os.write(fd, b"\0" * 4096)
    except OSError as exc:
        assert exc.errno == errno.ENOSPC  # noqa: PT017 - write until the disk is full
    finally:
        os.close(fd)
    return filler


#: The cheapest hash a users file accepts: keeps login tests fast.
CHEAP_HASH = "pbkdf2:sha256:100000"


def write_users(path: Path, users: dict[str, str]) -> Path:
    """Write a users file (mode 0600) of ``users`` (login: password); return its path."""
    path.write_text(
        "".join(f"{u}:{hash_password(p, method=CHEAP_HASH)}\n" for u, p in users.items())
    )
    path.chmod(0o600)
    return path
