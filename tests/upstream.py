"""A real SMTP upstream for tests: aiosmtpd on 127.0.0.1 in its own thread.

Misbehaviours are small named functions passed as ``rcpt_reply`` / ``data_reply``.
"""

from __future__ import annotations

import asyncio
import ssl
import threading
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any, Self

from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword

DROP = "drop"  # a data_reply that closes the connection instead of answering


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
    return session.ssl is not None or server.transport.get_extra_info("ssl_object") is not None


class _Handler:
    def __init__(self, upstream: FakeUpstream) -> None:
        self.upstream = upstream

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        reply = self.upstream.rcpt_reply(address) if self.upstream.rcpt_reply else None
        if reply:
            return reply
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server, session, envelope):
        reply = self.upstream.data_reply(envelope) if self.upstream.data_reply else None
        if reply == DROP:
            server.transport.close()
            return "421 4.4.2 dropped"  # never reaches the client
        if reply:
            return reply
        login = getattr(session, "test_login", None)
        self.upstream.messages.append(
            Received(
                sender=envelope.mail_from,
                recipients=list(envelope.rcpt_tos),
                content=envelope.original_content,
                tls=_over_tls(server, session),
                auth=login,
                mail_options=list(envelope.mail_options),
            )
        )
        return f"250 2.0.0 OK queued as up{len(self.upstream.messages)}"


class ThreadedServer:
    """An asyncio server on 127.0.0.1 with its own loop in its own thread: ``with`` it."""

    def __init__(self) -> None:
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)

    def _create(self) -> Coroutine[Any, Any, asyncio.Server]:
        """The coroutine that starts the server (run on the server's loop)."""
        raise NotImplementedError

    def __enter__(self) -> Self:
        self._thread.start()
        self._server = asyncio.run_coroutine_threadsafe(self._create(), self._loop).result(10)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    def __exit__(self, *exc_info: object) -> None:
        # asyncio.Server is not thread-safe: close it on its own loop's thread
        self._loop.call_soon_threadsafe(self._server.close)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)


class FakeUpstream(ThreadedServer):
    """An upstream SMTP server: STARTTLS, implicit TLS or plain, with optional AUTH.

    ``host``: the loopback address to listen on (``"::1"`` for an IPv6-only host).
    """

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        tls: str = "none",
        context: ssl.SSLContext | None = None,
        credentials: tuple[str, str] | None = None,
        rcpt_reply: Callable[[str], str | None] | None = None,
        data_reply: Callable[[Any], str | None] | None = None,
    ) -> None:
        self.host = host
        self.tls = tls
        self.context = context
        self.credentials = credentials
        self.rcpt_reply = rcpt_reply
        self.data_reply = data_reply
        self.messages: list[Received] = []
        self.auth_attempts: list[tuple[str, bool]] = []  # (login, whether over TLS)
        super().__init__()

    def _authenticate(self, server, session, envelope, mechanism, auth_data) -> AuthResult:
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
        return SMTP(_Handler(self), **self._options())

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
