"""Start and stop the SMTP listeners (TCP and unix sockets) on the running event loop.

With ``listen_tls`` the TCP listeners offer STARTTLS; with ``listen_auth`` they offer AUTH
PLAIN and LOGIN inside TLS only and MAIL needs it (``accept_any``, capture mode: any login
succeeds and MAIL does not need one). Unix sockets get neither (their mode and
group say who may connect). Password checks run in a worker thread: they are slow on purpose.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import functools
import socket
import ssl
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, cast

from aiosmtpd.smtp import MISSING, SMTP, AuthResult, syntax

from relay.log import fields, logger
from relay.receive.connections import Connections, StressTimer, client_of
from relay.receive.data import WholeBufferData
from relay.receive.handler import RelayHandler, describe_peer
from relay.receive.options import (
    Limits,
    ListenAuthConfig,
    Listener,
    ListenTlsConfig,
    Network,
)
from relay.receive.policy import peer_allowed
from relay.receive.sockets import BACKLOG, address, bind, unbind
from relay.receive.tables import CommandNames
from relay.receive.users import PasswordHash, check_login

__all__ = ["Listeners"]

#: The AUTH mechanisms the listener implements (``auth_PLAIN``, ``auth_LOGIN`` below).
_MECHANISMS = ("PLAIN", "LOGIN")


class _RelaySMTP(CommandNames, StressTimer, WholeBufferData):
    """aiosmtpd's protocol with admission control before the greeting, and the listener's
    STARTTLS and AUTH policy (``tls`` and ``auth`` are None on unix sockets)."""

    def __init__(
        self,
        handler: RelayHandler,
        gate: Connections,
        *,
        limits: Limits,
        tls: ListenTlsConfig | None,
        auth: ListenAuthConfig | None,
        tls_context: ssl.SSLContext | None,
        users: Mapping[str, PasswordHash],
        **kwargs: Any,
    ) -> None:
        super().__init__(
            handler,
            tls_context=tls_context if tls is not None else None,
            auth_required=auth is not None and not auth.accept_any,
            auth_require_tls=True,  # never False: AUTH before STARTTLS would show the password
            auth_exclude_mechanism=() if auth is not None else _MECHANISMS,
            **kwargs,
        )
        self._gate = gate
        self._limits = limits
        self._tls_required = tls is not None and tls.required
        self._auth = auth
        self._users = users
        self._auth_failures = 0
        self._unbroken = 0  # octets received since the last CRLF
        self._after_cr = False

    @property
    def alone(self) -> bool:
        """Whether this is the process's only connection (the handler may then block the
        event loop briefly: nobody else waits on it)."""
        return len(self._gate) <= 1

    def data_received(self, data: bytes) -> None:
        """Hang up on a "line" longer than a whole message before it reaches aiosmtpd, which
        keeps every fragment of an over-long DATA line until its CRLF arrives, whatever
        ``data_size_limit`` says (memory would grow with the stream until the timeout).
        """
        end = data.rfind(b"\r\n")
        if end >= 0:
            self._unbroken = len(data) - end - 2
        elif self._after_cr and data.startswith(b"\n"):
            self._unbroken = len(data) - 1
        else:
            self._unbroken += len(data)
        self._after_cr = data.endswith(b"\r")
        if self._unbroken > max(self.data_size_limit or 0, 2**20):
            transport = cast(asyncio.WriteTransport | None, self.transport)
            if transport is not None and not transport.is_closing():
                logger.warning(
                    "reject: %s sent a line longer than a message",
                    self._peer(),
                    extra=fields(client=describe_peer(self._peer()), reason="line too long"),
                )
                transport.write(b"421 4.7.0 Line too long; closing connection\r\n")
                transport.close()
            return
        super().data_received(data)

    def _peer(self) -> object:
        """The client's address (every connection has a session)."""
        assert self.session is not None
        return self.session.peer

    def _hang_up(self) -> None:
        """Close the connection (its transport exists from the first byte on)."""
        assert self.transport is not None
        self.transport.close()

    async def _handle_client(self) -> None:
        peer = self._peer()
        if not peer_allowed(peer, self._gate.networks):
            logger.warning(
                "reject: connect from %s: not in allowed_networks",
                peer,
                extra=fields(client=describe_peer(peer), reason="not in allowed_networks"),
            )
            await self.push("554 5.7.1 Access denied: this relay serves only its allowed networks")
            self._hang_up()
            return
        if injected := await self.event_handler.fault(self, "connect"):
            await self.push(injected)  # after a drop, nothing reaches the client
            self._hang_up()
            return
        assert self.transport is not None  # connected
        refusal = self._gate.admit(self, client_of(self.transport), self._limits)
        if refusal is not None:
            await self.push(refusal)
            self._hang_up()
            return
        try:
            await super()._handle_client()
        finally:
            self._gate.release(self, self._limits)

    async def push(self, status: str | bytes) -> None:
        """Send a reply; what it quotes from the client (an address) cannot break the line.

        Bytes are AUTH challenges (base64 made here) and go out as they are. aiosmtpd lists
        AUTH inside TLS even when no mechanism is left; that empty line is left out.
        """
        if isinstance(status, bytes):
            await super().push(status)
        elif status != "250-AUTH ":
            await super().push(_one_line(status))

    @syntax("MAIL FROM: <address>", extended=" [SP <mail-parameters>]")
    async def smtp_MAIL(self, arg: str | None) -> None:
        """MAIL, refused with ``530 5.7.0`` before STARTTLS when ``listen_tls.required``."""
        if self._tls_required and self.session is not None and self.session.ssl is None:
            await self.push("530 5.7.0 Must issue a STARTTLS command first")
            return
        await super().smtp_MAIL(arg)

    @syntax("DATA")
    async def smtp_DATA(self, arg: str) -> None:
        """DATA; an injected ``drop`` fault (capture mode) hangs up halfway through."""
        recipients = tuple(self.envelope.rcpt_tos) if self.envelope else ()
        if recipients and not arg and await self.event_handler.cut_data(self, recipients):
            return
        await super().smtp_DATA(arg)

    async def auth_PLAIN(self, _: SMTP, args: list[str]) -> AuthResult:
        """AUTH PLAIN (RFC 4616): ``authzid NUL login NUL password``, with the command or
        after an empty challenge. The authzid is ignored: the login is the only identity."""
        blob = await self._auth_answer(args, "")
        if blob is None:
            return AuthResult(success=False, handled=True)
        fields = blob.split(b"\0")
        if len(fields) != 3:
            await self.push("501 5.5.2 Cannot split the PLAIN credentials")
            return AuthResult(success=False, handled=True)
        return await self._check(fields[1], fields[2], "PLAIN")

    async def auth_LOGIN(self, _: SMTP, args: list[str]) -> AuthResult:
        """AUTH LOGIN: the login (with the command or challenged), then the password."""
        login = await self._auth_answer(args, "Username:")
        password = await self._auth_answer([], "Password:") if login is not None else None
        if login is None or password is None:
            return AuthResult(success=False, handled=True)
        return await self._check(login, password, "LOGIN")

    async def _auth_answer(self, args: list[str], challenge: str) -> bytes | None:
        """The decoded initial response in ``args``, else the answer to ``challenge``;
        None once the client was told why there is none (bad base64, ``*``)."""
        if len(args) < 2:
            answer = await self.challenge_auth(challenge)
            return None if answer is MISSING else answer
        try:
            return base64.b64decode(args[1], validate=True)
        except binascii.Error:
            await self.push("501 5.5.2 Cannot decode base64")
            return None

    async def _check(self, login: bytes, password: bytes, mechanism: str) -> AuthResult:
        """Check the credentials in a worker thread. A failure is logged with the login
        (never the password), then answered after ``failure_delay``, or with ``421 4.7.0``
        and a hang-up at ``max_failures``."""
        assert self._auth is not None
        if self._auth_failures >= self._auth.max_failures:  # pipelined behind the 421
            return AuthResult(success=False, handled=True)
        name = login.decode("utf-8", "replace")
        if self._auth.accept_any or await asyncio.to_thread(
            check_login, self._users, name, password
        ):
            how = f"{mechanism}, any login accepted" if self._auth.accept_any else mechanism
            logger.info(
                "auth: %s logged in as %s (%s)",
                self._peer(),
                _shown(name),
                how,
                extra=fields(client=describe_peer(self._peer()), user=_shown(name), mechanism=how),
            )
            return AuthResult(success=True, auth_data=name)
        self._auth_failures += 1
        logger.warning(
            "auth: %s failed %s login as %s (failure %d of %d)",
            self._peer(),
            mechanism,
            _shown(name),
            self._auth_failures,
            self._auth.max_failures,
            extra=fields(
                client=describe_peer(self._peer()),
                mechanism=mechanism,
                user=_shown(name),
                failures=self._auth_failures,
                limit=self._auth.max_failures,
            ),
        )
        if self._auth_failures >= self._auth.max_failures:
            await self.push("421 4.7.0 Too many failed AUTH attempts; closing connection")
            self._hang_up()
            return AuthResult(success=False, handled=True)
        await asyncio.sleep(self._auth.failure_delay)
        return AuthResult(success=False, handled=False)  # aiosmtpd answers 535 5.7.8


def _shown(login: str) -> str:
    """A login as it may appear in a log line: quoted, nothing invisible, at most 64 characters."""
    return '"' + "".join(char if char.isprintable() else "?" for char in login[:64]) + '"'


def _one_line(reply: str) -> str:
    """``reply`` with stray CR, LF, control and invisible characters as ``?`` and
    undecodable octets (aiosmtpd's surrogate escapes) as backslash escapes, so it can
    always be sent and never shows the client something it cannot see."""
    text = reply.encode("utf-8", "backslashreplace").decode("utf-8")
    return "\r\n".join(
        "".join(char if char.isprintable() else "?" for char in line) for line in text.split("\r\n")
    )


class Listeners:
    """The relay's SMTP servers: one per configured listen address."""

    def __init__(
        self,
        listeners: Iterable[Listener],
        handler: RelayHandler,
        *,
        networks: tuple[Network, ...],
        limits: Limits,
        hostname: str,
        tls: ListenTlsConfig | None = None,
        auth: ListenAuthConfig | None = None,
        tls_context: ssl.SSLContext | None = None,
        users: Mapping[str, PasswordHash] | None = None,
    ) -> None:
        """``tls`` and ``auth`` apply to the TCP listeners, with the context and the users
        read from their files (:mod:`relay.credentials`); they (and ``limits``) are read
        for each new connection, so replacing them puts a reload in force."""
        self.listeners = tuple(listeners)
        self.handler = handler
        self.limits = limits
        self.hostname = hostname
        self.tls = tls
        self.auth = auth
        self.tls_context = tls_context
        self.users: Mapping[str, PasswordHash] = users or {}
        self._gate = Connections(networks)
        self._servers: list[asyncio.Server] = []
        self._own = True  # the sockets were bound here, and go with the servers

    def reconfigure(
        self,
        *,
        limits: Limits,
        tls: ListenTlsConfig | None,
        auth: ListenAuthConfig | None,
        tls_context: ssl.SSLContext | None,
        users: Mapping[str, PasswordHash],
    ) -> None:
        """Put reloaded settings (and the credentials read with them) in force for new
        connections."""
        self.limits, self.tls, self.auth = limits, tls, auth
        self.tls_context, self.users = tls_context, users

    def _protocol(self, *, tcp: bool) -> _RelaySMTP:
        return _RelaySMTP(
            self.handler,
            self._gate,
            limits=self.limits,
            tls=self.tls if tcp else None,
            auth=self.auth if tcp else None,
            tls_context=self.tls_context,
            users=self.users,
            hostname=self.hostname,
            ident="notify-relay",
            data_size_limit=self.limits.max_message_size,
            enable_SMTPUTF8=True,
            decode_data=False,
            timeout=self.limits.timeout,
        )

    async def start(self, sockets: Sequence[socket.socket] | None = None) -> list[str]:
        """Serve ``sockets`` (bound by the supervisor, who also removes them), or bind every
        listener here; return the addresses served (real ports for port 0)."""
        self._own = sockets is None
        if sockets is None:
            sockets = [sock for listener in self.listeners for sock in bind(listener)]
        loop = asyncio.get_running_loop()
        for sock in sockets:
            tcp = sock.family != socket.AF_UNIX
            protocol = functools.partial(self._protocol, tcp=tcp)
            if tcp:
                server = await loop.create_server(protocol, sock=sock, backlog=BACKLOG)
            else:
                server = await loop.create_unix_server(protocol, sock=sock, backlog=BACKLOG)
            self._servers.append(server)
        return [address(sock) for sock in sockets]

    async def stop(self) -> None:
        """Stop accepting; connections in progress are closed."""
        for server in self._servers:
            server.close()
        for server in self._servers:
            await server.wait_closed()
        if self._own:
            for listener in self.listeners:
                unbind(listener)
