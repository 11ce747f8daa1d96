"""A real SMTP upstream for tests: aiosmtpd on loopback in its own thread, recording what
it takes, with misbehaviours on request.

Misbehaviours come two ways: reply functions (``mail_reply``, ``rcpt_reply`` take the
address, ``data_reply`` the envelope) returning a reply line, None (behave), :data:`DROP`
(close without a reply; nothing recorded) or :data:`RECORD_THEN_DROP` (take the message,
then close: the one window where SMTP must duplicate, RFC 1047); and fault rules
(:meth:`FakeUpstream.misbehave`), the same rules the capture listener's fault injection
uses (:mod:`relay.receive.faults`).
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import Callable, Coroutine, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self

from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword

from relay.receive.faults import FaultRule, Faults, FaultsConfig, Stage, cut_data, inject
from relay.testing.loop import LoopThread

__all__ = [
    "DROP",
    "RECORD_THEN_DROP",
    "FakeUpstream",
    "Received",
    "SinkHandler",
    "SinkProtocol",
    "ThreadedServer",
]

DROP = "drop"
RECORD_THEN_DROP = "record-then-drop"
_DROPPED = "421 4.4.2 dropped"  # what a handler returns after closing: it reaches nobody


@dataclass
class Received:
    """One message as the upstream took it."""

    sender: str
    recipients: list[str]
    content: bytes
    tls: bool
    auth: str | None
    mail_options: list[str] = field(default_factory=list)


def _over_tls(server: SMTP, session: Any) -> bool:
    """STARTTLS sets session.ssl; an implicit-TLS transport only shows in its extra info."""
    transport = server.transport
    return session.ssl is not None or (
        transport is not None and transport.get_extra_info("ssl_object") is not None
    )


def _close(server: SMTP) -> None:
    """Hang up on the client (a connection aiosmtpd has not set up yet has nothing to close)."""
    if server.transport is not None:
        server.transport.close()


class SinkHandler:
    """The aiosmtpd hooks of :class:`FakeUpstream`: misbehave if asked, else record."""

    def __init__(self, upstream: FakeUpstream) -> None:
        self.upstream = upstream

    async def _misbehaving(
        self, server: SMTP, stage: Stage, reply_to: Callable[[Any], str | None] | None, arg: Any
    ) -> str | None:
        """The reply a misbehaviour asks for (None: behave); DROP closes the connection."""
        reply = reply_to(arg) if reply_to else None
        if reply is None:
            addresses = (arg,) if stage == "rcpt" else tuple(getattr(arg, "rcpt_tos", ()))
            return await self.upstream.fault(server, stage, addresses)
        if reply == DROP:
            _close(server)
            return _DROPPED
        return reply

    async def handle_EHLO(
        self, server: SMTP, session: Any, envelope: Any, hostname: str, responses: list[str]
    ) -> list[str]:
        session.host_name = hostname
        self.upstream.ehlo_count += 1
        hidden = tuple(f"250-{name}".upper() for name in self.upstream.hide)
        return [line for line in responses if not line.upper().startswith(hidden)]

    async def handle_MAIL(
        self, server: SMTP, session: Any, envelope: Any, address: str, mail_options: list[str]
    ) -> str:
        if answer := await self._misbehaving(server, "mail", self.upstream.mail_reply, address):
            return answer
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 2.1.0 OK"

    async def handle_RCPT(
        self, server: SMTP, session: Any, envelope: Any, address: str, rcpt_options: list[str]
    ) -> str:
        if answer := await self._misbehaving(server, "rcpt", self.upstream.rcpt_reply, address):
            return answer
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server: SMTP, session: Any, envelope: Any) -> str:
        upstream = self.upstream
        reply = await self._misbehaving(server, "data", upstream.data_reply, envelope)
        if reply and reply != RECORD_THEN_DROP:
            return reply
        upstream.messages.append(
            Received(
                sender=envelope.mail_from,
                recipients=list(envelope.rcpt_tos),
                content=envelope.original_content,
                tls=_over_tls(server, session),
                auth=getattr(session, "test_login", None),
                mail_options=list(envelope.mail_options),
            )
        )
        if reply == RECORD_THEN_DROP:
            _close(server)
            return _DROPPED
        count = len(upstream.messages)
        if upstream.final_dot_delay:  # the message is taken; only the reply is late
            await asyncio.sleep(upstream.final_dot_delay())
        return f"250 2.0.0 OK queued as up{count}"


class SinkProtocol(SMTP):
    """aiosmtpd's protocol with the ``connect`` fault stage before the greeting and the
    ``data`` drop halfway through the message."""

    def __init__(self, upstream: FakeUpstream, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.upstream = upstream

    async def _handle_client(self) -> None:
        if reply := await self.upstream.fault(self, "connect"):
            await self.push(reply)
            _close(self)
            return
        await super()._handle_client()

    async def smtp_DATA(self, arg: str) -> None:
        """DATA; a ``drop`` fault rule hangs up halfway through the message."""
        recipients = tuple(self.envelope.rcpt_tos) if self.envelope else ()
        if recipients and not arg and await cut_data(self.upstream.faults, recipients, self):
            return
        await super().smtp_DATA(arg)


class ThreadedServer(LoopThread):
    """An asyncio server on loopback with its own loop in its own thread: ``with`` it."""

    def __init__(self) -> None:
        super().__init__(name=type(self).__name__)
        self.port = 0

    def _create(self) -> Coroutine[Any, Any, asyncio.Server]:
        """The coroutine that starts the server (run on the server's loop)."""
        raise NotImplementedError

    def __enter__(self) -> Self:
        self.start()
        self._server = self.call(self._create(), 10)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    def __exit__(self, *exc_info: object) -> None:
        # asyncio.Server is not thread-safe: close it on its own loop's thread
        self._loop.call_soon_threadsafe(self._server.close)
        self.stop()


class FakeUpstream(ThreadedServer):
    """An upstream SMTP server: STARTTLS, implicit TLS or plain, with optional AUTH.

    ``host``: the loopback address to listen on (``"::1"`` for an IPv6-only host).
    ``final_dot_delay()``: seconds to wait, with the message taken, before answering the
    final dot. ``hide``: EHLO keywords not to advertise (``("8BITMIME",)``). ``ca_file``:
    the CA a client trusts for ``context``'s certificate (kept for the test to read).
    """

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        tls: str = "none",
        context: ssl.SSLContext | None = None,
        credentials: tuple[str, str] | None = None,
        mail_reply: Callable[[str], str | None] | None = None,
        rcpt_reply: Callable[[str], str | None] | None = None,
        data_reply: Callable[[Any], str | None] | None = None,
        final_dot_delay: Callable[[], float] | None = None,
        hide: Iterable[str] = (),
        ca_file: Path | None = None,
    ) -> None:
        self.host = host
        self.ca_file = ca_file
        self.tls = tls
        self.context = context
        self.credentials = credentials
        self.mail_reply = mail_reply
        self.rcpt_reply = rcpt_reply
        self.data_reply = data_reply
        self.final_dot_delay = final_dot_delay
        self.hide = tuple(hide)
        self.faults = Faults()
        self.messages: list[Received] = []
        self.auth_attempts: list[tuple[str, bool]] = []  # (login, whether over TLS)
        self.ehlo_count = 0
        super().__init__()

    def misbehave(
        self,
        stage: Stage,
        *,
        reply: str | None = None,
        drop: bool = False,
        delay: float = 0.0,
        rate: float = 1.0,
        recipients: Iterable[str] = (),
        times: int = 0,
    ) -> None:
        """Add a fault rule: at ``stage`` (``connect``, ``mail``, ``rcpt``, ``data``) wait
        ``delay`` s, then answer ``reply`` or ``drop`` the connection; ``rate`` is the
        chance, ``recipients`` the address patterns, ``times`` (0: always) the count."""
        rule = FaultRule(
            stage=stage,
            reply=reply,
            drop=drop,
            delay=delay,
            rate=rate,
            recipients=tuple(recipients),
            times=times,
        )
        self.faults.add(rule)

    def behave(self) -> None:
        """Drop every rule :meth:`misbehave` added."""
        self.faults.configure(FaultsConfig())

    async def fault(
        self, server: SMTP, stage: Stage, addresses: tuple[str, ...] = ()
    ) -> str | None:
        """The reply of a fault rule at ``stage`` (None: behave)."""
        return await inject(self.faults, stage, addresses, server.transport)

    def _authenticate(
        self, server: SMTP, session: Any, envelope: Any, mechanism: str, auth_data: Any
    ) -> AuthResult:
        assert isinstance(auth_data, LoginPassword)
        login = auth_data.login.decode()
        self.auth_attempts.append((login, _over_tls(server, session)))
        ok = (
            self.credentials is not None
            and (login, auth_data.password.decode()) == self.credentials
        )
        session.test_login = login if ok else None
        return AuthResult(success=ok, handled=False)

    def _options(self) -> dict[str, Any]:
        """The aiosmtpd ``SMTP`` keyword arguments for this upstream's mode."""
        return {
            "hostname": "upstream.test",
            "tls_context": self.context if self.tls == "starttls" else None,
            "require_starttls": False,
            "authenticator": self._authenticate if self.credentials else None,
            # aiosmtpd does not count an implicit-TLS connection as TLS (aiosmtpd #281)
            "auth_require_tls": self.tls == "starttls",
            "auth_required": self.credentials is not None,
            "enable_SMTPUTF8": True,
        }

    def _protocol(self) -> SMTP:
        return SinkProtocol(self, SinkHandler(self), **self._options())

    def _create(self) -> Coroutine[Any, Any, asyncio.Server]:
        ssl_context = self.context if self.tls == "implicit" else None
        return self._loop.create_server(self._protocol, self.host, 0, ssl=ssl_context)

    def wait_for(self, count: int, timeout: float = 10.0) -> list[Received]:
        """Block until ``count`` messages arrived (or fail after ``timeout`` seconds)."""
        deadline = time.monotonic() + timeout
        while len(self.messages) < count:
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"upstream got {len(self.messages)} messages, expected {count}"
                )
            time.sleep(0.02)
        return self.messages

    def sequences(self, header: str = "X-Seq") -> list[str]:
        """The ``header`` value of every message received, in arrival order."""
        found = []
        for message in list(self.messages):
            for line in message.content.split(b"\r\n"):
                if line.lower().startswith(header.lower().encode() + b":"):
                    found.append(line.split(b":", 1)[1].strip().decode())
                    break
        return found
