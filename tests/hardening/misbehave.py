"""Upstream misbehaviours for the fault tests, as small named functions and two servers.

:class:`Upstream` is the shared :class:`~upstream.FakeUpstream` (aiosmtpd in a thread, which
also answers the final dot late and hides extensions on request) with STARTTLS tricks and a
drop in the middle of DATA. :class:`RawUpstream` runs a hand-written script per
connection for what aiosmtpd cannot do (raw DATA bytes, hostile replies).

``rcpt_reply``/``data_reply`` functions return a reply line, None (behave), :data:`DROP`
(close without a reply; nothing recorded) or :data:`RECORD_THEN_DROP` (take the message,
then close without a reply: the one window where SMTP must duplicate, RFC 1047).
"""

from __future__ import annotations

import asyncio
import itertools
import ssl
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from aiosmtpd.smtp import SMTP
from upstream import DROP, FakeUpstream, ThreadedServer

from relay.testing.upstream import RECORD_THEN_DROP, SinkHandler, SinkProtocol

__all__ = [
    "DROP",
    "RECORD_THEN_DROP",
    "RawUpstream",
    "Upstream",
    "endless_continuation",
    "fail_first",
    "greet_421_once",
    "huge_reply_line",
    "record_raw_data",
    "refuse",
    "silent_at",
    "starttls_refused",
    "starttls_then_garbage",
    "starttls_then_silence",
    "starttls_with_injected_plaintext",
]


def fail_first(count: int, reply: str) -> Callable[[Any], str | None]:
    """A reply function answering ``reply`` to its first ``count`` calls, then behaving."""
    calls = itertools.count()
    return lambda _: reply if next(calls) < count else None


def refuse(replies: dict[str, str], *, times: int | None = None) -> Callable[[str], str | None]:
    """An ``rcpt_reply`` answering ``replies[local part]`` (at most ``times`` times each)."""
    used: dict[str, int] = {}

    def reply(address: str) -> str | None:
        local = address.partition("@")[0]
        if local not in replies or (times is not None and used.get(local, 0) >= times):
            return None
        used[local] = used.get(local, 0) + 1
        return replies[local]

    return reply


# --- STARTTLS misbehaviours: what the server does instead of (or around) the handshake ---


async def starttls_with_injected_plaintext(server: SMTP) -> bool:
    """Answer 220 and, in the same write, a fake EHLO reply (GHSA-vxj7-4xrp-5vr4); then
    do the handshake. A client that keeps the plaintext would read it as the next reply.
    """
    server._writer.write(b"220 go ahead\r\n250-upstream.test fake\r\n250 AUTH PLAIN LOGIN\r\n")
    await server._writer.drain()
    return True  # go on with the real handshake


async def starttls_refused(server: SMTP) -> bool:
    """Offer STARTTLS, then refuse it (``454``), as a server in trouble or a MITM would."""
    await server.push("454 4.7.0 TLS not available due to temporary reason")
    return False


async def starttls_then_garbage(server: SMTP) -> bool:
    """Answer 220, then send plaintext where the TLS handshake should be."""
    await server.push("220 Ready to start TLS")
    server._writer.write(b"this is not a TLS server hello\r\n" * 4)
    await server._writer.drain()
    server.transport.close()
    return False


async def starttls_then_silence(server: SMTP) -> bool:
    """Answer 220 and then never speak TLS (the handshake stalls)."""
    await server.push("220 Ready to start TLS")
    await asyncio.sleep(3600)
    return False


class _Protocol(SinkProtocol):
    upstream: Upstream

    async def smtp_STARTTLS(self, arg: str) -> None:
        trick = self.upstream.starttls
        if trick is None or arg or not self.tls_context:
            await super().smtp_STARTTLS(arg)
            return
        if await trick(self):
            push = self.push

            async def silent(status: str) -> None:  # the 220 was already sent by the trick
                self.push = push  # type: ignore[method-assign]

            self.push = silent  # type: ignore[method-assign]
            await super().smtp_STARTTLS(arg)

    async def smtp_DATA(self, arg: str) -> None:
        cut = self.upstream.drop_during_data
        if cut is None or not self.envelope or not self.envelope.rcpt_tos:
            await super().smtp_DATA(arg)
            return
        await self.push("354 End data with <CR><LF>.<CR><LF>")
        await self._reader.readexactly(cut)
        self.upstream.drop_during_data = None  # once
        self.upstream.dropped_during_data += 1
        self.transport.close()


class Upstream(FakeUpstream):
    """:class:`FakeUpstream` with STARTTLS tricks and a drop in the middle of DATA.

    ``starttls``: one of the ``starttls_*`` functions. ``drop_during_data``: close after
    reading that many bytes of DATA (once).
    """

    def __init__(
        self,
        *,
        starttls: Callable[[SMTP], Awaitable[bool]] | None = None,
        drop_during_data: int | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.starttls = starttls
        self.drop_during_data = drop_during_data
        self.dropped_during_data = 0

    def _protocol(self) -> SMTP:
        return _Protocol(self, SinkHandler(self), **self._options())


# --- scripted servers: one coroutine per connection ---

Script = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


def record_raw_data(store: list[bytes]) -> Script:
    """A minimal server that stores each DATA section exactly as it came off the wire
    (dot-stuffing, line ends and the final ``.`` included)."""

    async def session(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"220 raw.test ESMTP\r\n")
        while line := await reader.readline():
            verb = line[:4].upper()
            if verb == b"EHLO":
                writer.write(b"250-raw.test\r\n250-8BITMIME\r\n250 SMTPUTF8\r\n")
            elif verb == b"DATA":
                writer.write(b"354 go on\r\n")
                await writer.drain()
                data = await reader.readuntil(b"\r\n.\r\n")
                store.append(data)
                writer.write(b"250 2.0.0 stored\r\n")
            elif verb == b"QUIT":
                writer.write(b"221 bye\r\n")
                await writer.drain()
                break
            else:
                writer.write(b"250 OK\r\n")
            await writer.drain()
        writer.close()

    return session


def greet_421_once(then: Script) -> Script:
    """Greet the first connection with ``421`` and hang up; run ``then`` for later ones."""
    greeted = []

    async def session(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if not greeted:
            greeted.append(True)
            writer.write(b"421 4.3.2 System shutting down, try later\r\n")
            await writer.drain()
            writer.close()
            return
        await then(reader, writer)

    return session


async def huge_reply_line(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Greet with a single 1 MB line."""
    writer.write(b"220 " + b"x" * 2**20 + b"\r\n")
    await writer.drain()
    await reader.read()


async def endless_continuation(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Greet, then answer EHLO with ``250-`` continuation lines until the client gives up."""
    writer.write(b"220 hostile.test ESMTP\r\n")
    await reader.readline()
    try:
        for _ in range(200_000):  # about 4 MB; the client must have stopped reading long ago
            writer.write(b"250-AUTH PLAIN LOGIN XOAUTH2\r\n")
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    writer.close()


def silent_at(verb: str) -> Script:
    """Behave (any AUTH accepted) until the client sends ``verb``, then never answer it;
    ``"greeting"``: never greet."""
    replies = {
        b"EHLO": b"250-silent.test\r\n250-STARTTLS\r\n250 AUTH PLAIN LOGIN\r\n",
        b"AUTH": b"235 2.7.0 Authentication successful\r\n",
        b"DATA": b"354 go on\r\n",
        b"QUIT": b"221 bye\r\n",
    }

    async def session(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if verb != "greeting":
            writer.write(b"220 silent.test ESMTP\r\n")
        while line := await reader.readline():
            command = line.split(maxsplit=1)[0].upper() if line.strip() else b""
            if verb == "greeting" or command == verb.encode():
                await reader.read()  # until the client gives up
                break
            writer.write(replies.get(command, b"250 OK\r\n"))
            if command == b"DATA":
                await reader.readuntil(b"\r\n.\r\n")
                writer.write(b"250 2.0.0 OK\r\n")
            await writer.drain()
        writer.close()

    return session


class RawUpstream(ThreadedServer):
    """A scripted server on 127.0.0.1 in its own thread: ``with RawUpstream(script) as up``."""

    def __init__(self, script: Script, *, context: ssl.SSLContext | None = None) -> None:
        self.script = script
        self.context = context
        self.connections = 0
        super().__init__()

    async def _session(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            await self.script(reader, writer)
        except (ConnectionError, OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            writer.close()

    def _create(self) -> Coroutine[Any, Any, asyncio.Server]:
        return asyncio.start_server(self._session, "127.0.0.1", 0, ssl=self.context, limit=2**24)
