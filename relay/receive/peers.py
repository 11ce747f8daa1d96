"""Which local user is at the other end of a loopback TCP connection (Linux sock_diag).

On loopback the client's IP address says nothing about who connects: every local process
may use 127.0.0.1, any other address of 127.0.0.0/8 or ::1 without privileges. The kernel
knows the owner of the client's socket. One netlink ``SOCK_DIAG_BY_FAMILY`` request for
the exact socket (its local end is our peer, its remote end is us) answers with the
socket's uid: a hash lookup in the kernel, about 15 µs, whatever the number of open
sockets (reading ``/proc/net/tcp`` instead costs a pass over every socket, which a
connection flood turns quadratic). No privilege is needed to ask.
"""

from __future__ import annotations

import ipaddress
import socket
import struct

__all__ = ["loopback_owner"]

_Address = ipaddress.IPv4Address | ipaddress.IPv6Address

_NETLINK_SOCK_DIAG = 4
_SOCK_DIAG_BY_FAMILY = 20
_NLM_F_REQUEST = 1
_HEADER = struct.Struct("=LHHLL")  # struct nlmsghdr: length, type, flags, seq, pid
#: struct inet_diag_req_v2 up to its socket id: family, protocol, ext, pad, states.
_REQUEST = struct.Struct("=BBBBI")
_PORTS = struct.Struct("!HH")  # inet_diag_sockid's source and destination ports
_TAIL = struct.Struct("=III")  # interface, and the cookie: INET_DIAG_NOCOOKIE, not checked
#: Where struct inet_diag_msg's uid is in the reply: after the netlink header, family,
#: state, timer and retransmits (4 octets), the socket id (48), expires, rqueue, wqueue.
_UID = struct.Struct("=I")
_UID_AT = _HEADER.size + 4 + 48 + 12


def loopback_owner(peer: tuple[_Address, int], local: tuple[_Address, int]) -> int | None:
    """The uid owning the client socket of the TCP connection ``peer`` -> ``local`` (each
    an address and a port, IPv4-mapped addresses as IPv4), or None where the kernel cannot
    say (not Linux, netlink refused, the client already gone)."""
    for family, client, server in _forms(peer, local):
        try:
            uid = _ask(family, client, server)
        except OSError:
            return None
        if uid is not None:
            return uid
    return None


def _forms(
    peer: tuple[_Address, int], local: tuple[_Address, int]
) -> list[tuple[int, tuple[bytes, int], tuple[bytes, int]]]:
    """Where the client socket may be: an IPv4 client as an IPv4 socket, or as a
    dual-stack IPv6 one (its addresses IPv4-mapped)."""
    (client, sport), (server, dport) = peer, local
    if client.version == 6 or server.version == 6:
        return [(socket.AF_INET6, (client.packed, sport), (server.packed, dport))]
    mapped = [ipaddress.IPv6Address(f"::ffff:{address}").packed for address in (client, server)]
    return [
        (socket.AF_INET, (client.packed, sport), (server.packed, dport)),
        (socket.AF_INET6, (mapped[0], sport), (mapped[1], dport)),
    ]


def _ask(family: int, client: tuple[bytes, int], server: tuple[bytes, int]) -> int | None:
    """One sock_diag request for the socket ``client`` -> ``server``; its uid or None."""
    request = (
        _REQUEST.pack(family, socket.IPPROTO_TCP, 0, 0, 0xFFFFFFFF)
        + _PORTS.pack(client[1], server[1])
        + client[0].ljust(16, b"\0")
        + server[0].ljust(16, b"\0")
        + _TAIL.pack(0, 0xFFFFFFFF, 0xFFFFFFFF)
    )
    header = _HEADER.pack(_HEADER.size + len(request), _SOCK_DIAG_BY_FAMILY, _NLM_F_REQUEST, 1, 0)
    with socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM, _NETLINK_SOCK_DIAG) as netlink:
        netlink.settimeout(1.0)
        netlink.sendto(header + request, (0, 0))
        reply = netlink.recv(4096)
    _, kind, _, _, _ = _HEADER.unpack_from(reply)
    if kind != _SOCK_DIAG_BY_FAMILY or len(reply) < _UID_AT + _UID.size:
        return None  # NLMSG_ERROR: no such socket
    uid: int = _UID.unpack_from(reply, _UID_AT)[0]
    return uid
