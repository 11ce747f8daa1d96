"""Which host names the page answers to (pure): the defence against DNS rebinding.

A page on another site can point its own name at this relay's address (DNS rebinding) and
then read and change mail as if it were the relay's own page; the one thing it cannot
change is the ``Host`` its requests carry. So a request is served only when its host is a
loopback name or address, one of ``web.allowed_hosts``, the configured listen address,
or the very address the connection came in on (an address literal is not rebindable).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Collection

__all__ = ["host_name", "host_served", "is_loopback"]

_LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost"})


def is_loopback(host: str) -> bool:
    """Whether ``host`` (a name or an address, without port) is this machine's loopback."""
    host = host.lower().rstrip(".")
    if host in _LOOPBACK_NAMES:
        return True
    address = _address(host)
    return address is not None and address.is_loopback


def host_name(header: str) -> str:
    """The host of a ``Host`` header: lower case, without port, brackets or final dot."""
    header = header.strip().lower()
    if header.startswith("["):
        return header[1 : header.find("]")] if "]" in header else header[1:]
    if header.count(":") == 1:
        header = header.split(":", 1)[0]
    return header.rstrip(".")


def host_served(
    host: str, *, local: str | None, listen: str, allowed: Collection[str] = ()
) -> bool:
    """Whether a request for ``host`` (from :func:`host_name`) is served by a page
    listening on ``listen`` whose connection arrived at address ``local``."""
    if not host:
        return False
    if is_loopback(host) or host in allowed:
        return True
    address = _address(host)
    if address is None:  # a name: only a configured one
        return host == listen.lower()
    return address in {_address(listen), _address(local or "")} - {None}


def _address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """``text`` as an address (an IPv4-mapped IPv6 one as IPv4), or None."""
    try:
        address = ipaddress.ip_address(text.split("%", 1)[0])
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address
