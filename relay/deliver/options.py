"""Config sections of delivery beyond host and port: OAuth2 tokens, sending quota, DNS."""

from __future__ import annotations

import ipaddress
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from relay.secret import Secret

__all__ = ["PROVIDERS", "QUOTA_PRESETS", "DnsConfig", "OAuthConfig", "Provider", "QuotaConfig"]


@dataclass(frozen=True, slots=True)
class Provider:
    """An OAuth2 identity provider's endpoints and the scope that allows sending mail."""

    consent_url: str
    token_url: str
    scope: str
    device_code_url: str = ""
    app_scope: str = ""  # the client-credentials (app-only) scope


#: Named presets for ``oauth.provider``; ``{tenant}`` is replaced by ``oauth.tenant``.
PROVIDERS = {
    "google": Provider(
        consent_url="https://accounts.google.com/o/oauth2/v2/auth",
        token_url="https://oauth2.googleapis.com/token",
        scope="https://mail.google.com/",
    ),
    "microsoft": Provider(
        consent_url="https://login.microsoftonline.com/{tenant}/oauth2/v2.0/authorize",
        token_url="https://login.microsoftonline.com/{tenant}/oauth2/v2.0/token",
        scope="https://outlook.office.com/SMTP.Send offline_access",
        device_code_url="https://login.microsoftonline.com/{tenant}/oauth2/v2.0/devicecode",
        app_scope="https://outlook.office365.com/.default",
    ),
}

#: Microsoft's multi-tenant endpoints: no app-only token can come from them.
_SHARED_TENANTS = frozenset({"common", "organizations", "consumers"})

#: Named presets for ``quota.preset``: (messages, recipients) per rolling 24 hours.
QUOTA_PRESETS = {"gmail": (500, 500), "workspace": (2000, 10_000)}


def _endpoint(value: object) -> str:
    """An https URL (plain http only to this machine, for tests): tokens must not leak."""
    url = urllib.parse.urlsplit(str(value))
    loopback = url.hostname in ("localhost", "127.0.0.1", "::1")
    if not url.hostname or not (url.scheme == "https" or (url.scheme == "http" and loopback)):
        raise ValueError(f"expected an https:// URL, got {value!r}")
    return str(value)


@dataclass(frozen=True, slots=True, kw_only=True)
class OAuthConfig:
    """Where access tokens come from: a refresh token at a token endpoint, the client
    credentials themselves (``grant: client_credentials``: app-only, no user), or a command.

    The client secret, refresh token and certificate key are files (mode 0600); config
    loading reads them into ``client_secret``, ``refresh_token`` and ``client_key``.
    ``client_certificate_file`` with ``client_key_file`` replaces the secret by a signed
    client assertion (RFC 7523). ``token_command`` instead runs a program that prints a
    current access token (msmtp's ``passwordeval`` habit).
    """

    provider: Literal["google", "microsoft"] | None = None
    tenant: str = "common"
    grant: Literal["refresh_token", "client_credentials"] = "refresh_token"
    token_url: str | None = field(default=None, metadata={"parse": _endpoint})
    consent_url: str | None = field(default=None, metadata={"parse": _endpoint})
    device_code_url: str | None = field(default=None, metadata={"parse": _endpoint})
    scope: str | None = None
    client_id: str | None = None
    client_secret_file: Path | None = None
    client_certificate_file: Path | None = None
    client_key_file: Path | None = None
    refresh_token_file: Path | None = None
    token_command: str | None = None
    timeout: float = field(default=30.0, metadata={"duration": True, "min": 1})
    client_secret: Secret | None = field(default=None, init=False, compare=False)
    refresh_token: Secret | None = field(default=None, init=False, compare=False)
    client_key: Secret | None = field(default=None, init=False, compare=False)

    def __post_init__(self) -> None:
        flow = (
            "provider",
            "token_url",
            "client_id",
            "client_secret_file",
            "client_certificate_file",
            "refresh_token_file",
        )
        if self.token_command is not None:
            given = [name for name in flow if getattr(self, name) is not None]
            if given:
                raise ValueError(f"token_command and {given[0]} exclude each other")
            return
        if self.provider is None and self.token_url is None:
            raise ValueError("give provider (google or microsoft), token_url, or token_command")
        if (self.client_certificate_file is None) != (self.client_key_file is None):
            raise ValueError("client_certificate_file and client_key_file go together")
        if self.client_certificate_file is not None and self.client_secret_file is not None:
            raise ValueError("give client_secret_file or a client certificate, not both")
        if self.grant == "client_credentials":
            self._check_client_credentials()
        elif self.client_id is None or self.refresh_token_file is None:
            raise ValueError(
                "client_id and refresh_token_file are required (notify-relay oauth writes the "
                "refresh token file)"
            )

    def _check_client_credentials(self) -> None:
        if self.client_id is None:
            raise ValueError("grant: client_credentials needs client_id")
        if self.client_secret_file is None and self.client_certificate_file is None:
            raise ValueError(
                "grant: client_credentials needs client_secret_file, or "
                "client_certificate_file with client_key_file"
            )
        if self.refresh_token_file is not None:
            raise ValueError("grant: client_credentials uses no refresh_token_file")
        if self.provider == "microsoft" and self.tenant in _SHARED_TENANTS:
            raise ValueError(
                "grant: client_credentials needs tenant: your tenant id or domain "
                f"(not {self.tenant}): app-only tokens belong to one tenant"
            )

    def _preset(
        self, name: Literal["consent_url", "token_url", "scope", "device_code_url"]
    ) -> str | None:
        own: str | None = getattr(self, name)
        if own is not None or self.provider is None:
            return own
        preset = PROVIDERS[self.provider]
        if name == "scope" and self.grant == "client_credentials":
            name = "app_scope"  # type: ignore[assignment]
        value = str(getattr(preset, name)).replace("{tenant}", self.tenant)
        return value or None

    @property
    def device_code_endpoint(self) -> str | None:
        """Where ``notify-relay oauth --device-code`` starts (RFC 8628), if known."""
        return self._preset("device_code_url")

    @property
    def token_endpoint(self) -> str:
        """The token URL: ``token_url``, else the provider's."""
        return self._preset("token_url") or ""

    @property
    def consent_endpoint(self) -> str | None:
        """The URL where the admin grants access (``notify-relay oauth``), if known."""
        return self._preset("consent_url")

    @property
    def scopes(self) -> str:
        """The scope to ask for: ``scope``, else the provider's."""
        return self._preset("scope") or ""


@dataclass(frozen=True, slots=True, kw_only=True)
class QuotaConfig:
    """Sending limits of one upstream account over a rolling ``window`` (24 h by default).

    ``preset`` fills in ``messages`` and ``recipients`` (gmail: 500/500, workspace:
    2000/10000); explicit numbers win. ``per_minute`` paces messages. At ``warn_at`` of a
    limit a warning is logged; a quota reply from the upstream pauses it for at least ``pause``.
    """

    preset: Literal["gmail", "workspace"] | None = None
    messages: int | None = field(default=None, metadata={"min": 1})
    recipients: int | None = field(default=None, metadata={"min": 1})
    per_minute: int | None = field(default=None, metadata={"min": 1})
    window: float = field(default=86400.0, metadata={"duration": True, "min": 60})
    warn_at: float = field(default=0.8, metadata={"min": 0.0, "max": 1.0})
    pause: float = field(default=900.0, metadata={"duration": True})

    def __post_init__(self) -> None:
        limits = (self.preset, self.messages, self.recipients, self.per_minute)
        if all(limit is None for limit in limits):
            raise ValueError("give a preset (gmail, workspace), messages, recipients or per_minute")

    @property
    def message_limit(self) -> int | None:
        """Messages allowed per window (None: no limit)."""
        return self.messages or (QUOTA_PRESETS[self.preset][0] if self.preset else None)

    @property
    def recipient_limit(self) -> int | None:
        """Recipients allowed per window (None: no limit)."""
        return self.recipients or (QUOTA_PRESETS[self.preset][1] if self.preset else None)


def _nameservers(value: object) -> tuple[str, ...]:
    items = value if isinstance(value, list) else [value]
    try:
        return tuple(str(ipaddress.ip_address(str(item))) for item in items)
    except ValueError:
        raise ValueError(f"expected IP addresses such as 127.0.0.1, got {value!r}") from None


@dataclass(frozen=True, slots=True, kw_only=True)
class DnsConfig:
    """The resolver for MX delivery and the recipient-domain check at RCPT time.

    ``nameservers`` empty: the system's (``/etc/resolv.conf``). ``check_recipient_domains``
    unset: on for recipients delivered to MX hosts. ``on_timeout``: what RCPT answers when DNS
    does not (``defer``: 451 4.4.3; ``accept``: take the recipient, delivery checks again).
    """

    nameservers: tuple[str, ...] = field(default=(), metadata={"parse": _nameservers})
    port: int = field(default=53, metadata={"min": 1, "max": 65535})
    timeout: float = field(default=5.0, metadata={"duration": True, "min": 0.1})
    check_recipient_domains: bool | None = None
    on_timeout: Literal["defer", "accept"] = "defer"
