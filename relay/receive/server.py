"""Start and stop the SMTP listeners (TCP and unix sockets) on the running event loop."""

from __future__ import annotations

import asyncio
import grp
import os
from collections.abc import Iterable
from typing import Any

from aiosmtpd.smtp import SMTP

from relay.config import Limits, Listener, Network, TcpListener
from relay.log import logger
from relay.receive.handler import RelayHandler
from relay.receive.policy import peer_allowed

__all__ = ["Listeners"]


class _Gate:
    """Connection admission shared by every connection of a listener set."""

    def __init__(self, networks: tuple[Network, ...], max_connections: int) -> None:
        self.networks = networks
        self.max_connections = max_connections
        self.active = 0


class _RelaySMTP(SMTP):
    """aiosmtpd's protocol with admission control before the greeting."""

    def __init__(self, handler: RelayHandler, gate: _Gate, **kwargs: Any) -> None:
        super().__init__(handler, **kwargs)
        self._gate = gate
        self._unbroken = 0  # octets received since the last CRLF
        self._after_cr = False

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
            if self.transport is not None and not self.transport.is_closing():
                logger.warning("reject: %s sent a line longer than a message", self.session.peer)
                self.transport.write(b"421 4.7.0 Line too long; closing connection\r\n")
                self.transport.close()
            return
        super().data_received(data)

    async def _handle_client(self) -> None:
        peer = self.session.peer
        if not peer_allowed(peer, self._gate.networks):
            logger.warning("reject: connect from %s: not in allowed_networks", peer)
            await self.push("554 5.7.1 Access denied: this relay serves only its allowed networks")
            self.transport.close()
            return
        if self._gate.active >= self._gate.max_connections:
            logger.warning("reject: connect from %s: too many connections", peer)
            await self.push("421 4.7.0 Too many connections; try again later")
            self.transport.close()
            return
        self._gate.active += 1
        try:
            await super()._handle_client()
        finally:
            self._gate.active -= 1

    async def push(self, status: str) -> None:  # type: ignore[override]
        """Send a reply; what it quotes from the client (an address) cannot break the line."""
        await super().push(_one_line(status))


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
    ) -> None:
        self.listeners = tuple(listeners)
        self.handler = handler
        self.limits = limits
        self.hostname = hostname
        self._gate = _Gate(networks, limits.max_connections)
        self._servers: list[asyncio.Server] = []

    def _protocol(self) -> _RelaySMTP:
        return _RelaySMTP(
            self.handler,
            self._gate,
            hostname=self.hostname,
            ident="notify-relay",
            data_size_limit=self.limits.max_message_size,
            enable_SMTPUTF8=True,
            decode_data=False,
            timeout=self.limits.timeout,
        )

    async def start(self) -> list[str]:
        """Bind every listener; return their addresses as bound (real ports for port 0)."""
        loop = asyncio.get_running_loop()
        bound = []
        for listener in self.listeners:
            if isinstance(listener, TcpListener):
                server = await loop.create_server(self._protocol, listener.host, listener.port)
                for sock in server.sockets:
                    host, port = sock.getsockname()[:2]
                    bound.append(f"[{host}]:{port}" if ":" in host else f"{host}:{port}")
            else:
                path = listener.unix
                if path.is_socket():
                    path.unlink()
                path.parent.mkdir(parents=True, exist_ok=True)
                server = await loop.create_unix_server(self._protocol, str(path))
                os.chmod(path, listener.mode)
                if listener.group is not None:
                    os.chown(path, -1, grp.getgrnam(listener.group).gr_gid)
                bound.append(f"unix:{path}")
            self._servers.append(server)
        return bound

    async def stop(self) -> None:
        """Stop accepting; connections in progress are closed."""
        for server in self._servers:
            server.close()
        for server in self._servers:
            await server.wait_closed()
        for listener in self.listeners:
            if not isinstance(listener, TcpListener):
                listener.unix.unlink(missing_ok=True)
