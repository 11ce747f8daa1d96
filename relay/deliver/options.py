"""Config sections of delivery: the upstream (smarthost or MX), its OAuth2 tokens and quota."""

from __future__ import annotations

import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from relay.errors import ConfigError
from relay.schema import where

__all__ = [
    "PROVIDERS",
    "QUOTA_PRESETS",
    "OAuthConfig",
    "Provider",
    "QuotaConfig",
    "UpstreamConfig",
    "check_upstream",
    "password_sources",
]


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
#: Field metadata of what loading fills in: set by ``dataclasses.replace``, not a key.
_LOADED = {"derived": True}

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

    The client secret, refresh token and certificate key are files (mode 0600), read by
    :func:`relay.deliver.secrets.read_upstream_secrets` (never into this config).
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


def _fingerprint(value: object) -> str | None:
    """A SHA-256 certificate fingerprint as 64 lower-case hex digits (colons dropped)."""
    if value is None:
        return None
    digits = str(value).replace(":", "").lower()
    if len(digits) != 64 or set(digits) - set("0123456789abcdef"):
        raise ValueError("expected a SHA-256 fingerprint (64 hex digits, colons allowed)")
    return digits


@dataclass(frozen=True, slots=True, kw_only=True)
class UpstreamConfig:
    """Where the relay delivers: a smarthost (``host``), or with ``mx: true`` (YAML shorthand
    ``mx``) the MX hosts of each recipient's domain, on ``port`` 25 unless set (a lab knob).

    ``auth``: ``password`` (PLAIN/LOGIN) or ``xoauth2``/``oauthbearer`` with ``oauth``.
    ``senders``/``recipients``: shell-style patterns that route matching mail here
    (:mod:`relay.deliver.routing`); ``quota``: the account's sending limits. The password
    keys name where it comes from; :func:`relay.deliver.secrets.read_upstream_secrets`
    reads it (``password`` is the config file's own text).
    """

    name: str | None = None
    host: str = ""
    mx: bool = False
    mx_tls: Literal["opportunistic", "verify"] = "opportunistic"
    port: int = field(default=0, metadata={"min": 1, "max": 65535})
    tls: Literal["starttls", "implicit", "none"] = "starttls"
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    password_file: Path | None = None
    password_env: str | None = None
    password_command: str | None = None
    allow_insecure_auth: bool = False
    ca_file: Path | None = None
    fingerprint: str | None = field(default=None, metadata={"parse": _fingerprint})
    helo: str | None = None
    timeout: float = field(default=60.0, metadata={"duration": True, "min": 1})
    data_timeout: float = field(default=600.0, metadata={"duration": True, "min": 1})
    max_recipients_per_message: int = field(default=100, metadata={"min": 1})
    connections: int = field(default=2, metadata={"min": 1, "max": 64})
    batch_size: int = field(default=50, metadata={"min": 1})
    idle_time: float = field(default=5.0, metadata={"duration": True, "min": 0.0})
    auth: Literal["password", "xoauth2", "oauthbearer"] = "password"
    oauth: OAuthConfig | None = None
    quota: QuotaConfig | None = None
    senders: tuple[str, ...] = ()
    recipients: tuple[str, ...] = ()
    #: Where it was given, for errors: the config file (or the ``serve`` flag or variable)
    #: and its key there (``upstreams[1]``); set by loading, never keys of their own.
    source: str = field(default="(defaults)", compare=False, metadata=_LOADED)
    section: str = field(default="upstream", compare=False, metadata=_LOADED)

    @property
    def effective_port(self) -> int:
        """The configured port, or the usual one for the TLS mode (587, 465, 25; MX: 25)."""
        if self.mx:
            return self.port or 25
        return self.port or {"starttls": 587, "implicit": 465, "none": 25}[self.tls]

    @property
    def tls_mode(self) -> str:
        """The TLS in force as logs name it: ``tls``, or for MX hosts ``mx_tls``."""
        return self.mx_tls if self.mx else self.tls

    def __str__(self) -> str:
        return self.name or ("mx" if self.mx else f"{self.host}:{self.effective_port}")


_PASSWORD_SOURCES = ("password", "password_file", "password_env", "password_command")
_NOT_FOR_MX = ("username", "fingerprint", "oauth", *_PASSWORD_SOURCES)


def password_sources(upstream: UpstreamConfig) -> list[str]:
    """The password keys ``upstream`` sets (a checked upstream sets at most one)."""
    return [name for name in _PASSWORD_SOURCES if getattr(upstream, name) is not None]


def check_upstream(upstream: UpstreamConfig, *, file: str, section: str = "upstream") -> None:
    """Refuse combinations that would leak the password or be ignored; the errors name
    ``file`` and the key under ``section``."""
    if upstream.mx:
        _check_mx(upstream, file, section)
        return
    if not upstream.host:
        raise ConfigError("required key is missing", file=file, key=where(section, "host"))
    sources = password_sources(upstream)
    key = where(section, sources[0] if sources else "username")
    if len(sources) > 1:
        raise ConfigError(f"give only one of {', '.join(sources)}", file=file, key=section)
    if upstream.auth != "password" or upstream.oauth is not None:
        _check_oauth(upstream, sources, file, section)
    if sources and upstream.username is None:
        raise ConfigError(f"a password needs {section}.username", file=file, key=key)
    if upstream.username is not None:
        if not sources and upstream.auth == "password":
            raise ConfigError(
                "username without a password: add password_file, password_env or password_command",
                file=file,
                key=where(section, "username"),
            )
        if upstream.tls == "none" and not upstream.allow_insecure_auth:
            raise ConfigError(
                "credentials with tls: none would be sent in clear; use starttls or implicit, "
                "or set allow_insecure_auth: true",
                file=file,
                key=where(section, "tls"),
            )


def _check_mx(upstream: UpstreamConfig, file: str, section: str) -> None:
    """MX hosts get no AUTH and no pinned certificate: refuse keys that would be ignored."""
    unused = ["host"] if upstream.host else []
    unused += [name for name in _NOT_FOR_MX if getattr(upstream, name) is not None]
    if upstream.tls != "starttls" or upstream.auth != "password":
        unused.append("tls" if upstream.tls != "starttls" else "auth")
    if unused:
        raise ConfigError(
            "not used with mx: true (no AUTH to MX hosts; their TLS is set by mx_tls)",
            file=file,
            key=where(section, unused[0]),
        )


def _check_oauth(upstream: UpstreamConfig, sources: list[str], file: str, section: str) -> None:
    """``auth: xoauth2``/``oauthbearer``: an ``oauth`` section and an account, no password."""
    if upstream.auth == "password":
        raise ConfigError(
            "oauth is used with auth: xoauth2 or oauthbearer", file=file, key=where(section, "auth")
        )
    if upstream.oauth is None or upstream.username is None or sources:
        raise ConfigError(
            f"auth: {upstream.auth} needs username (the mail account) and an oauth section, "
            "and no password",
            file=file,
            key=where(section, sources[0]) if sources else where(section, "oauth"),
        )
