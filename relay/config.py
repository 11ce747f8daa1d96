"""Load and validate the relay's configuration into frozen dataclasses, one per area.

Every error names the file, the key path and what is allowed
(``relay.yaml: upstream.port: expected an integer 1-65535, got "58x"``); unknown keys are
errors. Secrets are read here once and wrapped in :class:`Secret`, whose repr hides them.
"""

from __future__ import annotations

import ipaddress
import os
import re
import socket
import ssl
import stat
import subprocess
import zoneinfo
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal

import yaml

from relay.capture.options import WebhookConfig
from relay.cleanup.options import CleanupOptions
from relay.cleanup.tracini import read_trac_ini
from relay.deliver.dkim import DkimConfig, SigningKey, signing_key
from relay.deliver.oauth import load_client_certificate
from relay.deliver.options import DnsConfig, OAuthConfig, QuotaConfig
from relay.errors import ConfigError
from relay.receive.faults import FaultsConfig
from relay.receive.options import Limits, ListenAuthConfig, ListenTlsConfig, server_context
from relay.receive.selfsigned import ensure_certificate
from relay.receive.users import PasswordHash, parse_users
from relay.schema import build, where
from relay.secret import Secret
from relay.web.hosts import is_loopback

__all__ = [
    "CaptureConfig",
    "FilterSetConfig",
    "FiltersConfig",
    "Limits",
    "ListenAuthConfig",
    "ListenTlsConfig",
    "QueueConfig",
    "RelayConfig",
    "ReleaseConfig",
    "Secret",
    "TcpListener",
    "UnixListener",
    "UpstreamConfig",
    "WebConfig",
    "check_upstream",
    "check_web",
    "load_config",
    "parse_listener",
    "parse_web_listener",
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


def _parse_port(text: str) -> int:
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
        return TcpListener(host, _parse_port(port))
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


def _parse_listeners(value: object) -> tuple[Listener, ...]:
    items = value if isinstance(value, list) else [value]
    if not items:
        raise ValueError("expected at least one address")
    return tuple(parse_listener(item) for item in items)


def _parse_networks(value: object) -> tuple[Network, ...]:
    items = value if isinstance(value, list) else [value]
    try:
        return tuple(ipaddress.ip_network(str(item), strict=False) for item in items)
    except ValueError as exc:
        raise ValueError(f"expected networks such as 127.0.0.0/8: {exc}") from None


@dataclass(frozen=True, slots=True, kw_only=True)
class UpstreamConfig:
    """Where the relay delivers: a smarthost (``host``), or with ``mx: true`` (YAML shorthand
    ``mx``) the MX hosts of each recipient's domain, on ``port`` 25 unless set (a lab knob).

    ``auth``: ``password`` (PLAIN/LOGIN) or ``xoauth2``/``oauthbearer`` with ``oauth``.
    ``senders``/``recipients``: shell-style patterns that route matching mail here
    (:mod:`relay.deliver.routing`); ``quota``: the account's sending limits.
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
    fingerprint: str | None = None
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
    secret: Secret | None = field(default=None, init=False, compare=False)

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


@dataclass(frozen=True, slots=True, kw_only=True)
class RetryConfig:
    """The retry schedule: exponential back-off with jitter, as Postfix does."""

    min_backoff: float = field(default=300.0, metadata={"duration": True})
    max_backoff: float = field(default=7200.0, metadata={"duration": True})
    lifetime: float = field(default=5 * 86400.0, metadata={"duration": True})
    jitter: float = field(default=0.1, metadata={"min": 0.0, "max": 1.0})


@dataclass(frozen=True, slots=True, kw_only=True)
class QueueConfig:
    """Where the durable spool lives and how it retries."""

    path: Path = Path("queue")
    retry: RetryConfig = field(default_factory=RetryConfig)


@dataclass(frozen=True, slots=True, kw_only=True)
class ReleaseConfig:
    """Manual release of captured mail (web page, API, ``mail release``).

    ``allowed``: shell-style recipient patterns a release may go to (empty: release is
    off); ``upstream``: where to (default: the top-level ``upstream``).
    """

    allowed: tuple[str, ...] = ()
    upstream: UpstreamConfig | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class CaptureConfig:
    """The capture store (a Maildir): on in capture mode, a switch in relay mode.

    Retention: at most ``max_messages`` (0: no limit), none older than ``max_age`` (0: no
    limit); the oldest go first. ``faults``: errors injected on the listener (capture mode
    only); ``webhooks``: where each captured message is announced.
    """

    path: Path = Path("mail")
    enabled: bool | None = None
    max_messages: int = field(default=10_000, metadata={"min": 0})
    max_age: float = field(default=0.0, metadata={"duration": True})
    release: ReleaseConfig = field(default_factory=ReleaseConfig)
    faults: FaultsConfig = field(default_factory=FaultsConfig)
    webhooks: tuple[WebhookConfig, ...] = ()


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
    users: dict[str, PasswordHash] = field(
        default_factory=dict, init=False, compare=False, repr=False
    )


def _parse_timezone(value: object) -> str:
    try:
        zoneinfo.ZoneInfo(str(value))
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise ValueError(
            f'expected a time zone such as "America/Los_Angeles", got "{value}"'
        ) from None
    return str(value)


@dataclass(frozen=True, slots=True, kw_only=True)
class FilterSetConfig:
    """Gmail filters of the recipients matching ``recipients`` (shell-style patterns)."""

    recipients: tuple[str, ...]
    rules: Path
    params: dict[str, str] = field(default_factory=dict, hash=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class FiltersConfig:
    """Per-recipient Gmail filter simulation; ``enforce: [delete]`` drops deleted copies."""

    sets: tuple[FilterSetConfig, ...] = ()
    enforce: tuple[Literal["delete"], ...] = ()
    timezone: str = field(default="America/Los_Angeles", metadata={"parse": _parse_timezone})


@dataclass(frozen=True, slots=True, kw_only=True)
class RelayConfig:
    """The whole configuration; each component gets only its own section.

    ``upstream`` (one) or ``upstreams`` (a list tried in order) may be given; once loaded,
    ``upstreams`` lists them all and ``upstream`` is the first.
    """

    listen: tuple[Listener, ...] = field(
        default=(TcpListener("127.0.0.1", 2525),), metadata={"parse": _parse_listeners}
    )
    allowed_networks: tuple[Network, ...] = field(
        default=(ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("::1/128")),
        metadata={"parse": _parse_networks},
    )
    hostname: str = field(default_factory=socket.gethostname)
    listen_tls: ListenTlsConfig | None = None
    listen_auth: ListenAuthConfig | None = None
    limits: Limits = field(default_factory=Limits)
    upstream: UpstreamConfig | None = None
    upstreams: tuple[UpstreamConfig, ...] = ()
    dns: DnsConfig = field(default_factory=DnsConfig)
    queue: QueueConfig = field(default_factory=QueueConfig)
    capture: CaptureConfig = field(default_factory=CaptureConfig)
    notification: CleanupOptions = field(default_factory=CleanupOptions)
    filters: FiltersConfig = field(default_factory=FiltersConfig)
    web: WebConfig = field(default_factory=WebConfig)
    trac_ini: Path | None = None
    dkim: tuple[DkimConfig, ...] = ()
    source: str = field(default="(defaults)", init=False)
    trac_ini_report: tuple[str, ...] = field(default=(), init=False)
    #: The ``dkim`` entries' keys, read once by :func:`load_config` (not with secrets=False).
    dkim_keys: tuple[SigningKey, ...] = field(default=(), init=False, compare=False)

    @property
    def capture_mode(self) -> bool:
        """True without an upstream: every message goes to the capture store."""
        return self.upstream is None

    @property
    def capture_enabled(self) -> bool:
        """Whether delivered (or, in capture mode, all) messages are kept in the Maildir."""
        return self.capture_mode or bool(self.capture.enabled)


def load_config(
    path: str | os.PathLike[str] | None,
    *,
    trac_ini: str | os.PathLike[str] | None = None,
    secrets: bool = True,
) -> RelayConfig:
    """Read, validate and return the configuration at ``path`` (``None``: the defaults).

    ``trac_ini`` (or the file's ``trac_ini:`` key) names a trac.ini whose ``[notification]``
    options are applied first; the file's own ``notification:`` keys win over them.
    ``secrets=False`` leaves the upstream password unread (``upstream.secret`` is None): for
    commands that never log in, run by users who may not be able to read it.
    """
    file = str(path) if path is not None else "(no config file)"
    data = _read_yaml(Path(path)) if path is not None else {}
    if not isinstance(data, dict):
        raise ConfigError("expected a mapping at the top level", file=file)
    base = Path(path).resolve().parent if path is not None else Path.cwd()
    if isinstance(data.get("capture"), bool):
        data = {**data, "capture": {"enabled": data["capture"]}}
    data = _expand_mx(data)
    if trac_ini is not None:
        data = {**data, "trac_ini": str(Path(trac_ini).resolve())}
    report = None
    if data.get("trac_ini") is not None:
        ini = build(_TracIni, {"trac_ini": data["trac_ini"]}, file=file, base=base).trac_ini
        report = read_trac_ini(ini)
        notification = data.get("notification") or {}
        if not isinstance(notification, dict):
            raise ConfigError("expected a mapping", file=file, key="notification")
        data = {**data, "notification": {**report.options, **notification}}
    config = build(RelayConfig, data, file=file, base=base)
    object.__setattr__(config, "source", file)
    if report is not None:
        object.__setattr__(config, "trac_ini_report", report.lines())
    if config.upstream is not None:
        check_upstream(config.upstream, file, secrets=secrets)
    if config.capture.release.upstream is not None:
        release = config.capture.release.upstream
        check_upstream(release, file, secrets=secrets, section="capture.release.upstream")
    _check_upstreams(config, file, secrets=secrets)
    _check_listen_security(config, file, secrets=secrets)
    check_web(config.web, file, secrets=secrets)
    if secrets:
        object.__setattr__(config, "dkim_keys", _dkim_keys(config.dkim, file))
    _check_limits(config.limits, file)
    _check_capture(config, file, secrets=secrets)
    return config


def _check_capture(config: RelayConfig, file: str, *, secrets: bool) -> None:
    """Faults only on a capture listener; read each webhook's signing secret once."""
    if config.capture.faults.rules and not config.capture_mode:
        raise ConfigError(
            "fault injection is for capture mode (no upstream): it would refuse real mail",
            file=file,
            key="capture.faults",
        )
    for n, hook in enumerate(config.capture.webhooks):
        section = f"capture.webhooks[{n}]"
        sources = [name for name in _SECRET_SOURCES if getattr(hook, name) is not None]
        if len(sources) > 1:
            raise ConfigError(f"give only one of {', '.join(sources)}", file=file, key=section)
        if secrets and sources:
            secret = _read_password(hook, sources[0], file, where(section, sources[0]))
            object.__setattr__(hook, "secret", Secret(secret))


def _check_limits(limits: Limits, file: str) -> None:
    """A per-client share cannot be more than the whole."""
    share = limits.max_connections_per_client
    if share is not None and share > limits.max_connections:
        raise ConfigError(
            f"expected at most max_connections ({limits.max_connections}), got {share}",
            file=file,
            key="limits.max_connections_per_client",
        )


def _expand_mx(data: dict[str, object]) -> dict[str, object]:
    """``upstream: mx`` (and ``- mx`` in ``upstreams``) is short for ``{mx: true}``."""

    def expand(value: object) -> object:
        return {"mx": True} if value == "mx" else value

    upstreams = data.get("upstreams")
    if isinstance(upstreams, list):
        data = {**data, "upstreams": [expand(item) for item in upstreams]}
    return {**data, "upstream": expand(data["upstream"])} if "upstream" in data else data


def _check_upstreams(config: RelayConfig, file: str, *, secrets: bool) -> None:
    """Check ``upstreams``; afterwards it lists every upstream and ``upstream`` is the first."""
    if config.upstream is not None and config.upstreams:
        raise ConfigError(
            "give upstream (one) or upstreams (a list), not both", file=file, key="upstreams"
        )
    for n, upstream in enumerate(config.upstreams):
        check_upstream(upstream, file, secrets=secrets, section=f"upstreams[{n}]")
    chain = config.upstreams or ((config.upstream,) if config.upstream else ())
    if chain and all(upstream.senders or upstream.recipients for upstream in chain):
        raise ConfigError(
            "every upstream has senders or recipients patterns; add one without them for the "
            "rest of the mail",
            file=file,
            key="upstreams" if config.upstreams else "upstream",
        )
    object.__setattr__(config, "upstreams", chain)
    object.__setattr__(config, "upstream", chain[0] if chain else None)


@dataclass(frozen=True, slots=True)
class _TracIni:
    trac_ini: Path


def _read_yaml(path: Path) -> object:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read: {exc.strerror}", file=str(path)) from None
    try:
        return yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"not valid YAML: {exc}", file=str(path)) from None


def check_upstream(
    upstream: UpstreamConfig, file: str, *, secrets: bool = True, section: str = "upstream"
) -> None:
    """Resolve the password and refuse combinations that would leak it (errors name ``file``)."""
    if upstream.mx:
        _check_mx(upstream, file, section)
        return
    if not upstream.host:
        raise ConfigError("required key is missing", file=file, key=where(section, "host"))
    sources = [name for name in _PASSWORD_SOURCES if getattr(upstream, name) is not None]
    key = where(section, sources[0] if sources else "username")
    if len(sources) > 1:
        raise ConfigError(f"give only one of {', '.join(sources)}", file=file, key=section)
    if upstream.auth != "password" or upstream.oauth is not None:
        _check_oauth(upstream, sources, file, section, secrets=secrets)
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
        if secrets and sources:
            secret = Secret(_read_password(upstream, sources[0], file, key))
            object.__setattr__(upstream, "secret", secret)
    if upstream.fingerprint is not None:
        digits = upstream.fingerprint.replace(":", "").lower()
        if len(digits) != 64 or set(digits) - set("0123456789abcdef"):
            raise ConfigError(
                "expected a SHA-256 fingerprint (64 hex digits, colons allowed)",
                file=file,
                key=where(section, "fingerprint"),
            )
        object.__setattr__(upstream, "fingerprint", digits)


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


def _check_oauth(
    upstream: UpstreamConfig, sources: list[str], file: str, section: str, *, secrets: bool
) -> None:
    """``auth: xoauth2``/``oauthbearer``: an ``oauth`` section and an account, no password."""
    key = where(section, "oauth")
    if upstream.auth == "password":
        raise ConfigError(
            "oauth is used with auth: xoauth2 or oauthbearer", file=file, key=where(section, "auth")
        )
    if upstream.oauth is None or upstream.username is None or sources:
        raise ConfigError(
            f"auth: {upstream.auth} needs username (the mail account) and an oauth section, "
            "and no password",
            file=file,
            key=where(section, sources[0]) if sources else key,
        )
    oauth = upstream.oauth
    files = (
        ("client_secret", oauth.client_secret_file),
        ("refresh_token", oauth.refresh_token_file),
    )
    for name, path in files:
        if secrets and path is not None:
            text = _read_password_file(path, file, where(key, f"{name}_file"))
            object.__setattr__(oauth, name, Secret(text))
    if secrets and oauth.client_key_file is not None:
        pem = _read_private(oauth.client_key_file, file, where(key, "client_key_file"))
        try:
            certificate = Path(str(oauth.client_certificate_file)).read_bytes()
            load_client_certificate(certificate, pem)
        except (OSError, ValueError) as exc:
            what = f"cannot read it: {exc.strerror}" if isinstance(exc, OSError) else str(exc)
            name = "client_certificate_file" if isinstance(exc, OSError) else "client_key_file"
            raise ConfigError(what, file=file, key=where(key, name)) from None
        object.__setattr__(oauth, "client_key", Secret(pem))


_PASSWORD_SOURCES = ("password", "password_file", "password_env", "password_command")
_SECRET_SOURCES = ("secret_file", "secret_env", "secret_command")
_NOT_FOR_MX = ("username", "fingerprint", "oauth", *_PASSWORD_SOURCES)


def _read_password(holder: object, source: str, file: str, key: str) -> str:
    """The secret ``holder.<source>`` gives: the value itself, or from the ``_env``
    variable, ``_file`` (owner-only) or ``_command`` (its first line of output) it names."""
    value = getattr(holder, source)
    if source.endswith("_env"):
        found = os.environ.get(str(value))
        if not found:
            raise ConfigError(f"environment variable {value} is not set", file=file, key=key)
        return found
    if source.endswith("_file"):
        return _read_password_file(Path(str(value)), file, key)
    if not source.endswith("_command"):
        return str(value)
    try:
        done = subprocess.run(
            str(value),
            shell=True,
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise ConfigError("the command did not finish within 30 s", file=file, key=key) from None
    if done.returncode != 0 or not done.stdout.strip():
        raise ConfigError(
            f"the command failed (exit {done.returncode}) or printed nothing", file=file, key=key
        )
    return done.stdout.splitlines()[0]


def _read_password_file(path: Path, file: str, key: str) -> str:
    lines = _read_private(path, file, key).splitlines()
    if not lines or not lines[0]:
        raise ConfigError(f"{path} is empty", file=file, key=key)
    return lines[0]


def _read_private(path: Path, file: str, key: str) -> str:
    """The text of a secret file, refused when group or others may read it."""
    try:
        info = path.stat()
        if info.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise ConfigError(
                f"{path} is readable by group or others (mode {stat.S_IMODE(info.st_mode):04o}); "
                f"run: chmod 600 {path}",
                file=file,
                key=key,
            )
        return path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}", file=file, key=key) from None


def _dkim_keys(entries: tuple[DkimConfig, ...], file: str) -> tuple[SigningKey, ...]:
    """Read each ``dkim`` entry's private key (owner-only, PEM, matching its algorithm)."""
    keys = []
    for n, entry in enumerate(entries):
        key, path = f"dkim[{n}].private_key_file", entry.private_key_file
        try:
            keys.append(signing_key(entry, _read_private(path, file, key).encode()))
        except ValueError as exc:
            raise ConfigError(f"{path}: {exc}", file=file, key=key) from None
    return tuple(keys)


def _check_listen_security(config: RelayConfig, file: str, *, secrets: bool) -> None:
    """AUTH only with STARTTLS, STARTTLS only with a TCP listener; load the certificate and
    the users once (not with ``secrets=False``: the key and users file stay unread)."""
    tls, auth = config.listen_tls, config.listen_auth
    if auth is not None and tls is None:
        message = "AUTH is offered only inside TLS: add a listen_tls section"
        raise ConfigError(message, file=file, key="listen_auth")
    if tls is None:
        return
    _check_capture_shortcuts(config, file)
    if not any(isinstance(listener, TcpListener) for listener in config.listen):
        raise ConfigError(
            "listen has no TCP address; a unix socket needs no STARTTLS or AUTH",
            file=file,
            key="listen_tls",
        )
    if not secrets:
        return
    if tls.cert_file is None:  # capture mode: a self-signed certificate beside the store
        try:
            cert_file, key_file = ensure_certificate(config.capture.path / "tls", config.hostname)
        except OSError as exc:
            message = f"cannot make a certificate: {exc}"
            raise ConfigError(message, file=file, key="listen_tls") from None
        tls = replace(tls, cert_file=cert_file, key_file=key_file)
        object.__setattr__(config, "listen_tls", tls)
    object.__setattr__(tls, "context", _listen_context(tls, file))
    if auth is not None and auth.users_file is not None:
        users = _read_users(auth.users_file, file, "listen_auth.users_file")
        object.__setattr__(auth, "users", users)


def _read_users(path: Path, file: str, key: str) -> dict[str, PasswordHash]:
    """The users file at ``path`` (owner-only), or a ConfigError naming ``key``."""
    try:
        return parse_users(_read_private(path, file, key))
    except ValueError as exc:
        raise ConfigError(f"{path}: {exc}", file=file, key=key) from None


def check_web(web: WebConfig, file: str, *, secrets: bool) -> None:
    """Read the web users (not with ``secrets=False``); refuse a page for anyone on the
    network: beyond loopback it needs a users file or an explicit opt-out."""
    if web.users_file is not None and secrets:
        object.__setattr__(web, "users", _read_users(web.users_file, file, "web.users_file"))
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


def _check_capture_shortcuts(config: RelayConfig, file: str) -> None:
    """A generated certificate and ``accept_any`` AUTH are for capture mode only."""
    tls, auth = config.listen_tls, config.listen_auth
    assert tls is not None
    if (tls.cert_file is None) != (tls.key_file is None):
        key = "listen_tls.key_file" if tls.key_file is None else "listen_tls.cert_file"
        raise ConfigError("give cert_file and key_file together", file=file, key=key)
    if tls.cert_file is None and not config.capture_mode:
        message = "required in relay mode (capture mode makes a self-signed certificate)"
        raise ConfigError(message, file=file, key="listen_tls.cert_file")
    if auth is None:
        return
    if auth.accept_any and not config.capture_mode:
        message = "capture mode only: relay mode checks every login against users_file"
        raise ConfigError(message, file=file, key="listen_auth.accept_any")
    if auth.accept_any and auth.users_file is not None:
        message = "give users_file or accept_any, not both"
        raise ConfigError(message, file=file, key="listen_auth.accept_any")
    if not auth.accept_any and auth.users_file is None:
        message = "required key is missing (or accept_any: true in capture mode)"
        raise ConfigError(message, file=file, key="listen_auth.users_file")


def _listen_context(tls: ListenTlsConfig, file: str) -> ssl.SSLContext:
    """The listener's TLS context; an error names the file that is missing or wrong."""
    assert tls.cert_file is not None and tls.key_file is not None
    for name in ("cert_file", "key_file"):
        path: Path = getattr(tls, name)
        try:
            path.open("rb").close()
        except OSError as exc:
            key = f"listen_tls.{name}"
            raise ConfigError(f"cannot read {path}: {exc.strerror}", file=file, key=key) from None
    try:
        return server_context(tls.cert_file, tls.key_file)
    except ssl.SSLError as exc:
        reason = exc.reason or exc.strerror or str(exc)
        if b"-----BEGIN CERTIFICATE-----" not in tls.cert_file.read_bytes():
            message, key = f"{tls.cert_file} holds no PEM certificate", "listen_tls.cert_file"
        else:
            message = f"{tls.key_file} is not the unencrypted PEM key of {tls.cert_file}"
            key = "listen_tls.key_file"
        raise ConfigError(f"{message} ({reason})", file=file, key=key) from None
