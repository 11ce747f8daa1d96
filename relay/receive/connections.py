"""Who holds the listener's connection slots: the global cap, a per-client cap, stress mode.

As Postfix's anvil and smtpd do: a client (an IP address on TCP, a peer uid on a unix
socket, read with ``SO_PEERCRED``) may hold at most ``limits.per_client`` connections, so
one busy or hostile process cannot take every slot; and while more than
``stress_threshold`` of ``max_connections`` are in use, every connection's idle and
command timeout drops to ``stress_timeout`` so that idle ones give their slots back soon.
Stress mode begins and ends with one log line each.

On TCP every local process shares 127.0.0.1: the per-client cap limits them together. A
tracker that needs its own share connects from another loopback address or over a unix
socket as its own user.
"""

from __future__ import annotations

import asyncio
import socket
import struct
from collections import Counter
from typing import Protocol

from relay.config import Network
from relay.log import logger
from relay.receive.options import Limits
from relay.receive.policy import peer_address

__all__ = ["Connections", "Timed", "client_of"]

_TOO_MANY = "421 4.7.0 Too many connections; try again later"
_TOO_MANY_FROM_YOU = "421 4.7.0 Too many connections from your address"
_PEERCRED = struct.Struct("3i")  # struct ucred: pid, uid, gid


class Timed(Protocol):
    """A connection whose idle and command timeout can be changed while it is open."""

    def set_timeout(self, seconds: float) -> None:
        """Use ``seconds`` from now on; a wait already running ends no later than that."""


def client_of(transport: asyncio.BaseTransport) -> str:
    """The client a connection counts against: its IP address (IPv4-mapped IPv6 as IPv4),
    or ``uid N`` of the process at the other end of a unix socket."""
    address = peer_address(transport.get_extra_info("peername"))
    if address is not None:
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
            logger.warning("reject: connect from %s: too many connections", client)
            return _TOO_MANY
        if self._per_client[client] >= limits.per_client:
            logger.warning(
                "reject: connect from %s: too many connections from this client (%d)",
                client,
                limits.per_client,
            )
            return _TOO_MANY_FROM_YOU
        self._open[connection] = client
        self._per_client[client] += 1
        if self.stressed:
            connection.set_timeout(_stress_timeout(limits))
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
        seconds = _stress_timeout(limits) if stressed else limits.timeout
        logger.warning(
            "smtp: stress mode %s: %d of %d connections in use; idle and command timeouts now %g s",
            "begins" if stressed else "ends",
            len(self._open),
            limits.max_connections,
            seconds,
        )
        for connection in self._open:
            connection.set_timeout(seconds)


def _stress_timeout(limits: Limits) -> float:
    return min(limits.stress_timeout, limits.timeout)
