"""Config sections of the listener beyond its addresses: limits, STARTTLS and AUTH.

STARTTLS and AUTH apply to the TCP listeners only. A unix socket needs neither: it never
leaves the machine, and its mode and group already say who may connect.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass, field
from pathlib import Path

from relay.receive.users import PasswordHash

__all__ = ["Limits", "ListenAuthConfig", "ListenTlsConfig", "server_context"]


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
    ``context`` from the certificate chain and key once. Without ``cert_file`` and
    ``key_file`` (capture mode only) a self-signed certificate is made on first use
    (:mod:`relay.receive.selfsigned`).
    """

    cert_file: Path | None = None
    key_file: Path | None = None
    required: bool = False
    context: ssl.SSLContext | None = field(default=None, init=False, compare=False, repr=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class ListenAuthConfig:
    """AUTH PLAIN and LOGIN on the TCP listeners, offered only inside TLS; MAIL needs it.

    ``users_file`` holds ``login:hash`` lines (:mod:`relay.receive.users`) and must not be
    readable by group or others; config loading reads it into ``users``. A connection is
    closed with ``421 4.7.0`` at its ``max_failures``-th failed AUTH; every failure before
    that is answered ``535 5.7.8`` after ``failure_delay``.

    ``accept_any`` (capture mode only, instead of ``users_file``): every login succeeds and
    MAIL does not need one, so a client configured for a real server works unchanged.
    """

    users_file: Path | None = None
    accept_any: bool = False
    max_failures: int = field(default=3, metadata={"min": 1, "max": 100})
    failure_delay: float = field(default=1.0, metadata={"duration": True, "max": 60})
    users: dict[str, PasswordHash] = field(
        default_factory=dict, init=False, compare=False, repr=False
    )


def server_context(cert_file: Path, key_file: Path) -> ssl.SSLContext:
    """A server-side TLS context (TLS 1.2 or later) holding the chain in ``cert_file``.

    Raises ``OSError`` or :class:`ssl.SSLError`; an encrypted key fails rather than prompting.
    """
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(cert_file, key_file, password=lambda: "")
    return context
