"""The ``web:`` section: where the page and JSON API listen, for which hosts and users."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from relay.errors import ConfigError
from relay.receive.options import TcpListener, parse_listener
from relay.web.hosts import is_loopback

__all__ = ["WebConfig", "check_web", "parse_web_listener"]


def parse_web_listener(value: object) -> TcpListener:
    """The web page's address: ``"HOST:PORT"`` only."""
    listener = parse_listener(value)
    if not isinstance(listener, TcpListener):
        raise ValueError(f'expected "HOST:PORT" such as "127.0.0.1:8025", got {value!r}')
    return listener


def _parse_hosts(value: object) -> tuple[str, ...]:
    hosts = tuple(
        str(item).strip().lower() for item in (value if isinstance(value, list) else [value])
    )
    for host in hosts:
        if not _HOST.fullmatch(host):
            raise ValueError(
                f'expected host names such as "relay.example.org" (no scheme or port), got "{host}"'
            )
    return hosts


#: A host name, an IPv4 address, or an IPv6 address without brackets.
_HOST = re.compile(r"[a-z0-9_-]+(?:\.[a-z0-9_-]+)*|[0-9a-f]*:[0-9a-f:.]+")


@dataclass(frozen=True, slots=True, kw_only=True)
class WebConfig:
    """The HTTP side: the page and JSON API over captured mail and the queue.

    Served only to requests for a loopback name or address, one of ``allowed_hosts``, or
    the address listened on (:mod:`relay.web.hosts`). ``users_file`` (``login:hash`` lines,
    as for ``listen_auth``) turns on HTTP basic auth. Listening beyond loopback needs it,
    or ``allow_unauthenticated: true`` (a proxy or firewall guards the port).
    """

    enabled: bool = True
    listen: TcpListener = field(
        default=TcpListener("127.0.0.1", 8025), metadata={"parse": parse_web_listener}
    )
    allowed_hosts: tuple[str, ...] = field(default=(), metadata={"parse": _parse_hosts})
    users_file: Path | None = None
    allow_unauthenticated: bool = False


def check_web(web: WebConfig, *, file: str) -> None:
    """Refuse a page for anyone on the network: beyond loopback it needs a users file or
    an explicit opt-out."""
    if not web.enabled or is_loopback(web.listen.host):
        return
    if web.users_file is None and not web.allow_unauthenticated:
        raise ConfigError(
            f"{web.listen} is reachable beyond this machine and the page shows and releases "
            "all captured mail: set web.users_file (HTTP basic auth; make lines with "
            "notify-relay hash-password LOGIN), or web.allow_unauthenticated: true when a "
            "proxy or firewall already guards the port",
            file=file,
            key="web.listen",
        )
