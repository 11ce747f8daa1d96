"""Load and validate the relay's configuration into frozen dataclasses, one per area.

Every error names the file, the key path and what is allowed
(``relay.yaml: upstream.port: expected an integer 1-65535, got "58x"``); unknown keys are
errors. The config names secrets (files, variables, commands) and never holds them:
:mod:`relay.credentials` reads them.
"""

from __future__ import annotations

import ipaddress
import os
import socket
from dataclasses import dataclass, field, replace
from pathlib import Path

import yaml

from relay.capture.options import CaptureConfig
from relay.cleanup.options import CleanupOptions, FiltersConfig
from relay.cleanup.tracini import read_trac_ini
from relay.deliver.dkim import DkimConfig
from relay.deliver.options import UpstreamConfig, check_upstream
from relay.errors import ConfigError
from relay.queue.options import QueueConfig
from relay.receive.options import (
    Limits,
    ListenAuthConfig,
    Listener,
    ListenTlsConfig,
    Network,
    TcpListener,
    check_limits,
    parse_listeners,
    parse_networks,
)
from relay.resolver import DnsConfig
from relay.schema import build
from relay.web.options import WebConfig, check_web

__all__ = ["RelayConfig", "load_config", "load_upstream"]


@dataclass(frozen=True, slots=True, kw_only=True)
class RelayConfig:
    """The whole configuration; each component gets only its own section.

    ``upstream`` (one) or ``upstreams`` (a list tried in order) may be given; once loaded,
    ``upstreams`` lists them all and ``upstream`` is the first.
    """

    listen: tuple[Listener, ...] = field(
        default=(TcpListener("127.0.0.1", 2525),), metadata={"parse": parse_listeners}
    )
    allowed_networks: tuple[Network, ...] = field(
        default=(ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("::1/128")),
        metadata={"parse": parse_networks},
    )
    hostname: str = field(default_factory=socket.gethostname)
    #: Receive worker processes in relay mode (None: one per CPU; 0: all in one process).
    workers: int | None = None
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
    #: The config file's name, and what was taken from trac.ini: set by :func:`load_config`.
    source: str = field(default="(defaults)", metadata={"derived": True})
    trac_ini_report: tuple[str, ...] = field(default=(), metadata={"derived": True})

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
) -> RelayConfig:
    """Read, validate and return the configuration at ``path`` (``None``: the defaults).

    ``trac_ini`` (or the file's ``trac_ini:`` key) names a trac.ini whose ``[notification]``
    options are applied first; the file's own ``notification:`` keys win over them.
    Nothing secret is read: :func:`relay.credentials.read_credentials` does that.
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
    config = replace(config, source=file, trac_ini_report=report.lines() if report else ())
    if config.upstream is not None:
        config = replace(config, upstream=load_upstream(config.upstream, file))
    release = config.capture.release
    if release.upstream is not None:
        section = "capture.release.upstream"
        loaded = load_upstream(release.upstream, file, section=section)
        capture = replace(config.capture, release=replace(release, upstream=loaded))
        config = replace(config, capture=capture)
    config = _check_upstreams(config, file)
    _check_listen_security(config, file)
    check_web(config.web, file=file)
    check_limits(config.limits, file=file)
    _check_capture(config, file)
    if config.workers is not None and not 0 <= config.workers <= _MOST_WORKERS:
        raise ConfigError(
            f"expected 0 to {_MOST_WORKERS} (0: one process), got {config.workers}",
            file=file,
            key="workers",
        )
    return config


#: The most receive workers a relay runs.
_MOST_WORKERS = 64


def _check_capture(config: RelayConfig, file: str) -> None:
    """Faults only on a capture listener; one secret source per webhook."""
    if config.capture.faults.rules and not config.capture_mode:
        raise ConfigError(
            "fault injection is for capture mode (no upstream): it would refuse real mail",
            file=file,
            key="capture.faults",
        )
    for n, hook in enumerate(config.capture.webhooks):
        section = f"capture.webhooks[{n}]"
        sources = hook.secret_sources
        if len(sources) > 1:
            raise ConfigError(f"give only one of {', '.join(sources)}", file=file, key=section)


def _expand_mx(data: dict[str, object]) -> dict[str, object]:
    """``upstream: mx`` (and ``- mx`` in ``upstreams``) is short for ``{mx: true}``."""

    def expand(value: object) -> object:
        return {"mx": True} if value == "mx" else value

    upstreams = data.get("upstreams")
    if isinstance(upstreams, list):
        data = {**data, "upstreams": [expand(item) for item in upstreams]}
    return {**data, "upstream": expand(data["upstream"])} if "upstream" in data else data


def _check_upstreams(config: RelayConfig, file: str) -> RelayConfig:
    """Check ``upstreams``; the config returned lists every upstream in ``upstreams``, and
    ``upstream`` is the first."""
    if config.upstream is not None and config.upstreams:
        raise ConfigError(
            "give upstream (one) or upstreams (a list), not both", file=file, key="upstreams"
        )
    loaded = tuple(
        load_upstream(upstream, file, section=f"upstreams[{n}]")
        for n, upstream in enumerate(config.upstreams)
    )
    chain = loaded or ((config.upstream,) if config.upstream else ())
    if chain and all(upstream.senders or upstream.recipients for upstream in chain):
        raise ConfigError(
            "every upstream has senders or recipients patterns; add one without them for the "
            "rest of the mail",
            file=file,
            key="upstreams" if config.upstreams else "upstream",
        )
    return replace(config, upstreams=chain, upstream=chain[0] if chain else None)


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


def load_upstream(
    upstream: UpstreamConfig, file: str, *, section: str = "upstream"
) -> UpstreamConfig:
    """Check ``upstream`` (:func:`~relay.deliver.options.check_upstream`); return it with
    ``file`` and ``section`` recorded, which errors about its secrets name."""
    check_upstream(upstream, file=file, section=section)
    return replace(upstream, source=file, section=section)


def _check_listen_security(config: RelayConfig, file: str) -> None:
    """AUTH only with STARTTLS, STARTTLS only with a TCP listener."""
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
