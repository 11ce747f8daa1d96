"""Listening sockets bound once for every receive worker: real sockets on loopback and in a
temporary directory."""

from __future__ import annotations

import grp
import socket
import stat
from pathlib import Path

import pytest

from relay.receive.options import TcpListener, UnixListener
from relay.receive.sockets import address, bind, unbind


def accepts(sock: socket.socket) -> bool:
    """Whether a client can connect to ``sock`` and the connection is there to accept."""
    with socket.socket(sock.family, socket.SOCK_STREAM) as client:
        client.settimeout(5)
        client.connect(sock.getsockname())
        sock.settimeout(5)
        connection, _ = sock.accept()
        connection.close()
    return True


def test_a_unix_socket_gets_the_listeners_mode_and_group(tmp_path: Path):
    group = grp.getgrnam("daemon")
    listener = UnixListener(unix=tmp_path / "run" / "smtp.sock", mode=0o620, group="daemon")
    [sock] = bind(listener)
    try:
        info = listener.unix.stat()
        assert stat.S_ISSOCK(info.st_mode)
        assert stat.S_IMODE(info.st_mode) == 0o620
        assert info.st_gid == group.gr_gid
        assert address(sock) == f"unix:{listener.unix}"
        assert accepts(sock)
    finally:
        sock.close()
    unbind(listener)
    assert not listener.unix.exists()


def test_an_unknown_group_is_an_error(tmp_path: Path):
    listener = UnixListener(unix=tmp_path / "smtp.sock", group="no-such-group-here")
    with pytest.raises(KeyError):
        bind(listener)


def test_a_socket_file_left_by_a_killed_server_is_replaced(tmp_path: Path):
    path = tmp_path / "smtp.sock"
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(str(path))
    stale.close()  # the file stays, as after SIGKILL
    [sock] = bind(UnixListener(unix=path))
    try:
        assert accepts(sock)
    finally:
        sock.close()


def test_a_regular_file_in_the_sockets_place_is_left_alone(tmp_path: Path):
    path = tmp_path / "smtp.sock"
    path.write_text("not a socket")
    with pytest.raises(OSError, match="in use"):
        bind(UnixListener(unix=path))
    assert path.read_text() == "not a socket"


def test_port_0_picks_a_free_port(tmp_path: Path):
    [sock] = bind(TcpListener(host="127.0.0.1", port=0))
    try:
        host, port = address(sock).rsplit(":", 1)
        assert host == "127.0.0.1" and int(port) > 0
        assert not sock.getblocking()
        assert accepts(sock)
    finally:
        sock.close()


def test_ipv6_loopback_is_bound_v6_only_and_shown_in_brackets():
    [sock] = bind(TcpListener(host="::1", port=0))
    try:
        assert sock.family == socket.AF_INET6
        assert sock.getsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY) == 1
        port = sock.getsockname()[1]
        assert address(sock) == f"[::1]:{port}"
        assert accepts(sock)
    finally:
        sock.close()


def test_a_port_in_use_is_an_error_and_closes_what_was_bound():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(OSError, match="in use"):
            bind(TcpListener(host="127.0.0.1", port=port))
