"""A raw SMTP client for attack tests: bytes go out exactly as given, replies come back one
by one, and nothing is "fixed" on the way (aiosmtplib and smtplib would normalise line ends
and dot-stuff, which is precisely what these tests must not do).
"""

from __future__ import annotations

import asyncio
import contextlib
import mailbox
import ssl
from pathlib import Path

__all__ = ["Wire", "captured", "code"]


def code(reply: bytes) -> int:
    """The reply code of a reply line (0 for an empty line: the connection closed)."""
    return int(reply[:3]) if reply[:3].isdigit() else 0


def captured(path: Path) -> list[bytes]:
    """Every message in the capture Maildir at ``path``, in no particular order."""
    if not (path / "new").exists():
        return []
    box = mailbox.Maildir(path, factory=None, create=False)
    return [box.get_bytes(key) for key in box.iterkeys()]


class Wire:
    """One raw connection to an SMTP server."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, port: int, *, host: str = "127.0.0.1", source: str | None = None) -> Wire:
        """Connect (from ``source`` when given: any 127.0.0.0/8 address works on Linux)."""
        local = (source, 0) if source else None
        reader, writer = await asyncio.open_connection(host, port, local_addr=local, limit=2**20)
        return cls(reader, writer)

    async def reply(self, timeout: float = 5.0) -> bytes:
        """The last line of the next (possibly multi-line) reply; ``b""`` once closed."""
        line = await asyncio.wait_for(self.reader.readline(), timeout)
        while line[3:4] == b"-":
            line = await asyncio.wait_for(self.reader.readline(), timeout)
        return line

    async def lines(self, timeout: float = 5.0) -> list[bytes]:
        """Every line of the next reply (an EHLO reply lists the extensions)."""
        found = [await asyncio.wait_for(self.reader.readline(), timeout)]
        while found[-1][3:4] == b"-":
            found.append(await asyncio.wait_for(self.reader.readline(), timeout))
        return found

    async def send(self, data: bytes) -> None:
        """Write ``data`` as it is."""
        self.writer.write(data)
        await self.writer.drain()

    async def command(self, data: bytes, timeout: float = 5.0) -> bytes:
        """Write ``data`` and return the reply to it."""
        await self.send(data)
        return await self.reply(timeout)

    async def replies_until_closed(self, timeout: float = 5.0) -> list[bytes]:
        """Every reply line until the server closes the connection."""
        found = []
        while line := await asyncio.wait_for(self.reader.readline(), timeout):
            found.append(line)
        return found

    async def greet(self) -> bytes:
        """Read the greeting and say EHLO; return the greeting."""
        greeting = await self.reply()
        await self.command(b"EHLO attacker.test\r\n")
        return greeting

    async def starttls(self, context: ssl.SSLContext, server_hostname: str = "localhost") -> None:
        """Do the TLS handshake (after the server's 220 to STARTTLS); later replies are
        read inside TLS."""
        await self.writer.start_tls(context, server_hostname=server_hostname)

    async def close(self) -> None:
        """Close without QUIT."""
        self.writer.close()
        with contextlib.suppress(OSError):
            await self.writer.wait_closed()
