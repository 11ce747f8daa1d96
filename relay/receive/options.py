"""Config sections of the listener: its addresses, allowed networks, limits, STARTTLS and AUTH.

STARTTLS and AUTH apply to the TCP listeners only. A unix socket needs neither: it never
leaves the machine, and its mode and group already say who may connect.
"""

from __future__ import annotations

import ipaddress
import ssl
from dataclasses import dataclass, field
from pathlib import Path

from relay.errors import ConfigError

__all__ = [
    "Limits",
    "ListenAuthConfig",
    "ListenTlsConfig",
    "Listener",
    "Network",
    "TcpListener",
    "UnixListener",
    "check_limits",
    "parse_listener",
    "parse_listeners",
    "parse_networks",
    "parse_port",
    "server_context",
]


Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True, slots=True)
class TcpListener:
    """A TCP address the SMTP listener binds (IPv6 hosts are written ``[::1]:2525``)."""

    host: str
    port: int

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


@dataclass(frozen=True, slots=True, kw_only=True)
class UnixListener:
    """A unix socket the SMTP listener binds, with its owner group and mode."""

    unix: Path
    mode: int = 0o660
    group: str | None = None

    def __str__(self) -> str:
        return f"unix:{self.unix}"


Listener = TcpListener | UnixListener


def parse_port(text: str) -> int:
    if not text.isdigit() or not 0 <= int(text) <= 65535:
        raise ValueError(f'expected a port 1-65535 (0: any free port), got "{text}"')
    return int(text)


def parse_listener(item: object) -> Listener:
    """A listen address: ``"HOST:PORT"``, ``"[::1]:PORT"``, ``"unix:PATH"`` or a unix mapping."""
    if isinstance(item, str) and item.startswith("unix:"):
        return UnixListener(unix=Path(item.removeprefix("unix:")))
    if isinstance(item, str):
        host, sep, port = item.rpartition(":")
        if not sep or not host:
            raise ValueError(f'expected "HOST:PORT" (IPv6: "[::1]:2525"), got "{item}"')
        host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
        return TcpListener(host, parse_port(port))
    if isinstance(item, dict) and "unix" in item:
        unknown = set(item) - {"unix", "mode", "group"}
        if unknown:
            raise ValueError(f"unknown key {sorted(unknown)[0]!r} (allowed: unix, mode, group)")
        mode = str(item.get("mode", "0660"))
        if not mode.isdigit() or set(mode) - set("01234567"):
            raise ValueError(f'expected an octal mode such as "0660", got "{mode}"')
        group = item.get("group")
        return UnixListener(unix=Path(str(item["unix"])), mode=int(mode, 8), group=group)
    raise ValueError(
        f'expected "HOST:PORT" or {{unix: PATH, mode: "0660", group: NAME}}, got {item!r}'
    )


def parse_listeners(value: object) -> tuple[Listener, ...]:
    items = value if isinstance(value, list) else [value]
    if not items:
        raise ValueError("expected at least one address")
    return tuple(parse_listener(item) for item in items)


def parse_networks(value: object) -> tuple[Network, ...]:
    items = value if isinstance(value, list) else [value]
    try:
        return tuple(ipaddress.ip_network(str(item), strict=False) for item in items)
    except ValueError as exc:
        raise ValueError(f"expected networks such as 127.0.0.0/8: {exc}") from None


@dataclass(frozen=True, slots=True, kw_only=True)
class Limits:
    """Listener limits; the defaults fit Gmail and Trac (all recipients in one transaction).

    ``max_connections_per_client`` caps the connections of one client (an IP address on
    TCP, a peer uid on a unix socket); unset, it is half of ``max_connections``. Above
    ``stress_threshold`` of ``max_connections`` the listener is in stress mode: a client
    has at most ``stress_timeout`` for its next command (a DATA upload keeps ``timeout``).
    """

    max_message_size: int = field(default=25 * 1024 * 1024, metadata={"min": 1024})
    max_recipients: int = field(default=1000, metadata={"min": 1})
    max_connections: int = field(default=100, metadata={"min": 1})
    max_connections_per_client: int | None = field(default=None, metadata={"min": 1})
    timeout: float = field(default=300.0, metadata={"duration": True, "min": 1})
    stress_threshold: float = field(default=0.8, metadata={"min": 0.1, "max": 1})
    stress_timeout: float = field(default=10.0, metadata={"duration": True, "min": 1})

    @property
    def per_client(self) -> int:
        """The connections one client may hold at a time."""
        share = self.max_connections_per_client
        return share if share is not None else max(1, self.max_connections // 2)


@dataclass(frozen=True, slots=True, kw_only=True)
class ListenTlsConfig:
    """STARTTLS on the TCP listeners (no implicit TLS: aiosmtpd would not count it as TLS).

    ``required``: MAIL before STARTTLS gets ``530 5.7.0``. Config loading builds
    the context from the certificate chain and key (:mod:`relay.credentials`). Without
    ``cert_file`` and ``key_file`` (capture mode only) a self-signed certificate is made on
    first use (:mod:`relay.receive.selfsigned`).
    """

    cert_file: Path | None = None
    key_file: Path | None = None
    required: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class ListenAuthConfig:
    """AUTH PLAIN and LOGIN on the TCP listeners, offered only inside TLS; MAIL needs it.

    ``users_file`` holds ``login:hash`` lines (:mod:`relay.receive.users`) and must not be
    readable by group or others; :mod:`relay.credentials` reads it. A connection is
    closed with ``421 4.7.0`` at its ``max_failures``-th failed AUTH; every failure before
    that is answered ``535 5.7.8`` after ``failure_delay``.

    ``accept_any`` (capture mode only, instead of ``users_file``): every login succeeds and
    MAIL does not need one, so a client configured for a real server works unchanged.
    """

    users_file: Path | None = None
    accept_any: bool = False
    max_failures: int = field(default=3, metadata={"min": 1, "max": 100})
    failure_delay: float = field(default=1.0, metadata={"duration": True, "max": 60})


def server_context(cert_file: Path, key_file: Path) -> ssl.SSLContext:
    """A server-side TLS context (TLS 1.2 or later) holding the chain in ``cert_file``.

    Raises ``OSError`` or :class:`ssl.SSLError`; an encrypted key fails rather than prompting.
    """
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(cert_file, key_file, password=lambda: "")
    return context


def check_limits(limits: Limits, *, file: str) -> None:
    """A per-client share cannot be more than the whole."""
    share = limits.max_connections_per_client
    if share is not None and share > limits.max_connections:
        raise ConfigError(
            f"expected at most max_connections ({limits.max_connections}), got {share}",
            file=file,
            key="limits.max_connections_per_client",
        )
