"""Who holds the listener's connection slots: the global cap, a per-client cap, stress mode.

As Postfix's anvil and smtpd do: a client (an IP address on TCP; a local user, by uid, on
a unix socket, read with ``SO_PEERCRED``, and on loopback TCP, asked of the kernel by
:mod:`relay.receive.peers`) may hold at most ``limits.per_client`` connections, so
one busy or hostile process cannot take every slot; and while more than
``stress_threshold`` of ``max_connections`` are in use, every connection's idle and
command timeout drops to ``stress_timeout`` (:class:`StressTimer`) so that idle ones give
their slots back soon. Stress mode begins and ends with one log line each.

On loopback every local process could use 127.0.0.1, another address of 127.0.0.0/8 or
::1, so there the share is per local user, as on a unix socket: one user's processes
cannot take the slots of another's (a tracker running as its own user keeps its share).
"""

from __future__ import annotations

import asyncio
import socket
import struct
from collections import Counter
from collections.abc import Callable
from typing import Protocol

from aiosmtpd.smtp import syntax

from relay.log import fields, logger
from relay.receive.options import Limits, Network
from relay.receive.peers import loopback_owner
from relay.receive.policy import peer_address

__all__ = ["Connections", "StressTimer", "Timed", "client_of"]

_TOO_MANY = "421 4.7.0 Too many connections; try again later"
_TOO_MANY_FROM_YOU = "421 4.7.0 Too many connections from your address"
_PEERCRED = struct.Struct("3i")  # struct ucred: pid, uid, gid


class Timed(Protocol):
    """A connection that can be put into stress mode and back while it is open."""

    def set_stress(self, seconds: float | None) -> None:
        """Wait at most ``seconds`` for the next command (None: the normal timeout)."""


class StressTimer:
    """The timeout part of aiosmtpd's ``SMTP`` with stress mode (mix in before ``SMTP``).

    aiosmtpd gives each command ``timeout`` seconds, counted from the end of the previous
    one, the whole DATA upload included. In stress mode a client also has at most the
    stress timeout (counted from the moment stress mode began, or from its last command
    that moves a transaction on) to send its next command, so idle connections give their
    slots back soon. NOOP, RSET, HELP, VRFY and EXPN do not count there (Postfix's junk
    commands): a client cannot keep its slot alive with them. A DATA upload under way keeps
    the normal deadline: a client sending its message is never cut off for being slower
    than the stress timeout (nor while the message is being stored).
    """

    loop: asyncio.AbstractEventLoop
    transport: asyncio.BaseTransport | None
    _timeout_duration: float
    _timeout_handle: asyncio.TimerHandle | None
    _timeout_cb: Callable[[], None]  # aiosmtpd's: close the connection
    _stress: float | None = None
    _stress_began = 0.0
    _uploading = False
    _deadline = 0.0
    _active = 0.0  # when the last command that counts in stress mode came
    _active_before = 0.0  # ... and the one before it (a junk command puts it back)

    def _reset_timeout(self, duration: float | None = None) -> None:
        """aiosmtpd calls this when a connection opens and before each command."""
        now = self.loop.time()
        self._deadline = now + (duration or self._timeout_duration)
        self._active_before, self._active = self._active, now
        self._schedule()

    def set_stress(self, seconds: float | None) -> None:
        """Wait at most ``seconds`` for the next command (None: the normal timeout)."""
        self._stress, self._stress_began = seconds, self.loop.time()
        if self._connected():
            self._schedule()

    def _junk(self) -> None:
        """The command under way does not count as activity in stress mode."""
        self._active = self._active_before
        self._schedule()

    @syntax("NOOP [ignored]")
    async def smtp_NOOP(self, arg: str) -> None:
        """aiosmtpd's NOOP, which does not keep a slot alive in stress mode."""
        self._junk()
        await super().smtp_NOOP(arg)  # type: ignore[misc]

    @syntax("RSET")
    async def smtp_RSET(self, arg: str) -> None:
        """aiosmtpd's RSET, which does not keep a slot alive in stress mode."""
        self._junk()
        await super().smtp_RSET(arg)  # type: ignore[misc]

    @syntax("HELP [command]")
    async def smtp_HELP(self, arg: str) -> None:
        """aiosmtpd's HELP, which does not keep a slot alive in stress mode."""
        self._junk()
        await super().smtp_HELP(arg)  # type: ignore[misc]

    @syntax("VRFY <address>")
    async def smtp_VRFY(self, arg: str) -> None:
        """aiosmtpd's VRFY, which does not keep a slot alive in stress mode."""
        self._junk()
        await super().smtp_VRFY(arg)  # type: ignore[misc]

    async def smtp_EXPN(self, arg: str) -> None:
        """aiosmtpd's EXPN (not implemented), which does not keep a slot alive either."""
        self._junk()
        await super().smtp_EXPN(arg)  # type: ignore[misc]

    @syntax("DATA")
    async def smtp_DATA(self, arg: str) -> None:
        """DATA with the normal deadline, whatever the mode."""
        self._uploading = True
        self._schedule()
        try:
            await super().smtp_DATA(arg)  # type: ignore[misc]
        finally:
            self._uploading = False
            self._active = self.loop.time()  # the next command has its time from here
            if self._connected():
                self._schedule()

    def _connected(self) -> bool:
        """Not closed yet (a timer on a closed connection would fail when it fires)."""
        return self.transport is not None and not self.transport.is_closing()

    def _schedule(self) -> None:
        when = self._deadline
        if self._stress is not None and not self._uploading:
            when = min(when, max(self._active, self._stress_began) + self._stress)
        if self._timeout_handle is not None:
            self._timeout_handle.cancel()
        self._timeout_handle = self.loop.call_at(when, self._timeout_cb)


def client_of(transport: asyncio.BaseTransport) -> str:
    """The client a connection counts against: ``uid N``, the local user at the other end
    of a unix socket or of a loopback TCP connection (any local process may use any
    loopback address, so the address says nothing there); otherwise its IP address
    (IPv4-mapped IPv6 as IPv4)."""
    peer, local = transport.get_extra_info("peername"), transport.get_extra_info("sockname")
    address, own = peer_address(peer), peer_address(local)
    if address is not None:
        if address.is_loopback and own is not None:
            uid = loopback_owner((address, int(peer[1])), (own, int(local[1])))
            if uid is not None:
                return f"uid {uid}"
        return str(address)
    sock = transport.get_extra_info("socket")
    try:
        _, uid, _ = _PEERCRED.unpack(
            sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _PEERCRED.size)
        )
    except (AttributeError, OSError):  # no socket, or not a unix socket on Linux
        return "unix"
    return f"uid {uid}"


class Connections:
    """The open connections of one listener set, counted in total and per client.

    ``limits`` come with each call (a reload puts new ones in force for the next
    connection); ``networks`` say who may connect at all.
    """

    def __init__(self, networks: tuple[Network, ...]) -> None:
        self.networks = networks
        self._open: dict[Timed, str] = {}
        self._per_client: Counter[str] = Counter()
        self.stressed = False

    def __len__(self) -> int:
        return len(self._open)

    def admit(self, connection: Timed, client: str, limits: Limits) -> str | None:
        """Count ``connection`` of ``client`` in and return None; or return the reply that
        refuses it (the global cap first, then the client's share)."""
        if len(self._open) >= limits.max_connections:
            logger.warning(
                "reject: connect from %s: too many connections",
                client,
                extra=fields(
                    client=client, reason="too many connections", limit=limits.max_connections
                ),
            )
            return _TOO_MANY
        if self._per_client[client] >= limits.per_client:
            logger.warning(
                "reject: connect from %s: too many connections from this client (%d)",
                client,
                limits.per_client,
                extra=fields(
                    client=client,
                    reason="too many connections from this client",
                    limit=limits.per_client,
                ),
            )
            return _TOO_MANY_FROM_YOU
        self._open[connection] = client
        self._per_client[client] += 1
        if self.stressed:
            connection.set_stress(limits.stress_timeout)
        self._update(limits)
        return None

    def release(self, connection: Timed, limits: Limits) -> None:
        """Count a closed connection out (one that was admitted)."""
        client = self._open.pop(connection)
        self._per_client[client] -= 1
        if not self._per_client[client]:
            del self._per_client[client]
        self._update(limits)

    def _update(self, limits: Limits) -> None:
        """Begin or end stress mode when the count crosses the threshold."""
        stressed = len(self._open) > limits.stress_threshold * limits.max_connections
        if stressed == self.stressed:
            return
        self.stressed = stressed
        state = "begins" if stressed else "ends"
        timeout = min(limits.stress_timeout, limits.timeout) if stressed else limits.timeout
        logger.warning(
            "smtp: stress mode %s: %d of %d connections in use; idle and command timeouts now %g s",
            state,
            len(self._open),
            limits.max_connections,
            timeout,
            extra=fields(
                stress=state,
                connections=len(self._open),
                limit=limits.max_connections,
                timeout=timeout,
            ),
        )
        for connection in self._open:
            connection.set_stress(limits.stress_timeout if stressed else None)
