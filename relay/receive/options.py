"""Config sections of the listener beyond its addresses: STARTTLS and AUTH.

Both apply to the TCP listeners only. A unix socket needs neither: it never leaves the
machine, and its mode and group already say who may connect.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass, field
from pathlib import Path

from relay.receive.users import PasswordHash

__all__ = ["ListenAuthConfig", "ListenTlsConfig", "server_context"]


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
