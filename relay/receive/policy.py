"""Who may connect and what an address may look like (pure; the handler maps verdicts)."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

from relay.receive.options import Network

__all__ = ["address_problem", "peer_address", "peer_allowed"]

_MAX_ADDRESS = 254  # RFC 5321 path limit (256) minus the angle brackets


def peer_allowed(peer: object, networks: Iterable[Network]) -> bool:
    """True for a TCP peer inside ``networks`` and for any unix-socket peer.

    A unix socket has no address (aiosmtpd reports ``""``); who may use it is decided by
    the socket file's owner, group and mode.
    """
    if not isinstance(peer, tuple | list):
        return True
    address = peer_address(peer)
    return address is not None and any(address in network for network in networks)


def peer_address(peer: object) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """The IP address of a TCP peer (``(host, port, ...)``), an IPv4-mapped IPv6 address
    as IPv4; None for a unix-socket peer or a host that is no address."""
    if not isinstance(peer, tuple | list):
        return None
    try:
        address = ipaddress.ip_address(str(peer[0]).split("%", 1)[0])
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def address_problem(address: str) -> str | None:
    """Why ``address`` cannot be relayed as it is, or None when it can."""
    if len(address) > _MAX_ADDRESS:
        return "address too long"
    if any(ord(char) < 32 or ord(char) == 127 for char in address):
        return "control characters in address"
    if not address.isascii() and any("\ud800" <= char <= "\udfff" for char in address):
        return "address is not valid UTF-8"  # aiosmtpd hands undecodable octets as surrogates
    if any(char in address for char in " ,;<>\\"):
        return "characters not allowed in an address"
    if not address.isascii() and not all(char.isprintable() for char in address):
        # Unicode spaces and invisible characters: aiosmtplib would strip them at the ends
        # (another address) or refuse the address at delivery time
        return "characters not allowed in an address"
    if address.count("@") > 1 and not address.startswith('"'):
        return "more than one @ in address"
    return None
