"""Listening sockets, bound before any SMTP server runs on them.

In one process the listeners bind their own; with receive workers the supervisor binds them
once (:func:`bind`) and every worker serves the same sockets, so the kernel hands each new
connection to one worker and a worker that dies drops no queued connection.
"""

from __future__ import annotations

import grp
import os
import socket
from pathlib import Path

from relay.receive.options import Listener, TcpListener

__all__ = ["BACKLOG", "address", "bind", "unbind"]

#: Connections the kernel queues per listening socket before a worker accepts them.
BACKLOG = 1024


def bind(listener: Listener) -> list[socket.socket]:
    """Bind and listen on ``listener``: one socket per address a TCP host names (port 0
    picks a free port), or the unix socket, created with the listener's mode and group
    (a socket file left by a killed server is replaced)."""
    if isinstance(listener, TcpListener):
        return _bind_tcp(listener)
    return [_bind_unix(listener.unix, listener.mode, listener.group)]


def unbind(listener: Listener) -> None:
    """Remove what :func:`bind` left on disk (a unix socket's file)."""
    if not isinstance(listener, TcpListener):
        listener.unix.unlink(missing_ok=True)


def address(sock: socket.socket) -> str:
    """How the log and ``/readyz`` show a bound socket: ``host:port``, ``[v6]:port``,
    ``unix:/path``."""
    if sock.family == socket.AF_UNIX:
        return f"unix:{sock.getsockname()}"
    host, port = sock.getsockname()[:2]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _bind_tcp(listener: TcpListener) -> list[socket.socket]:
    found = socket.getaddrinfo(
        listener.host or None, listener.port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )
    bound: list[socket.socket] = []
    try:
        for family, kind, proto, _, where in dict.fromkeys(found):
            sock = socket.socket(family, kind, proto)
            bound.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.bind(where)
            sock.listen(BACKLOG)
            sock.setblocking(False)
    except OSError:
        for sock in bound:
            sock.close()
        raise
    return bound


def _bind_unix(path: Path, mode: int, group: str | None) -> socket.socket:
    if path.is_socket():
        path.unlink()
    path.parent.mkdir(parents=True, exist_ok=True)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.bind(str(path))
        os.chmod(path, mode)
        if group is not None:
            os.chown(path, -1, grp.getgrnam(group).gr_gid)
        sock.listen(BACKLOG)
        sock.setblocking(False)
    except (OSError, KeyError):
        sock.close()
        raise
    return sock
