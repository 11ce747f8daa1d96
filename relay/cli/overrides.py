"""``serve`` flags and ``NOTIFY_RELAY_*`` variables over the loaded config (pure).

Each flag has a variable of the same name for containers; a flag wins over its variable,
and both win over the config file. Errors name the flag or variable they came from:
``--upstream: unknown scheme http:// (use smtp+starttls://, smtps:// or smtp://)``.

=====================  ===========================  ===================================
flag                   variable                     sets
=====================  ===========================  ===================================
``--smtp ADDR``        ``NOTIFY_RELAY_SMTP``         ``listen`` (several: repeat, or
                                                    commas in the variable)
``--web ADDR|off``     ``NOTIFY_RELAY_WEB``          ``web.listen`` / ``web.enabled``
``--mail-dir PATH``    ``NOTIFY_RELAY_MAIL_DIR``     ``capture.path``
``--upstream URL``     ``NOTIFY_RELAY_UPSTREAM``     ``upstream`` (replaces the file's)
``--password-file F``  ``NOTIFY_RELAY_PASSWORD_FILE``  ``upstream.password_file``
(none)                 ``NOTIFY_RELAY_PASSWORD``     ``upstream.password_env``
=====================  ===========================  ===================================
"""

from __future__ import annotations

import dataclasses
import re
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from relay.config import RelayConfig, load_upstream
from relay.deliver.options import UpstreamConfig
from relay.errors import ConfigError
from relay.receive.options import TcpListener, parse_listener
from relay.web.options import check_web, parse_web_listener

__all__ = ["ENVIRONMENT", "Overrides", "Setting", "apply_overrides", "read_overrides"]

#: Each flag's destination name and its environment variable.
ENVIRONMENT = {
    "smtp": "NOTIFY_RELAY_SMTP",
    "web": "NOTIFY_RELAY_WEB",
    "mail_dir": "NOTIFY_RELAY_MAIL_DIR",
    "upstream": "NOTIFY_RELAY_UPSTREAM",
    "password_file": "NOTIFY_RELAY_PASSWORD_FILE",
}
#: The variable holding the upstream password itself (no flag: argv is visible to all users).
PASSWORD_ENV = "NOTIFY_RELAY_PASSWORD"


_SCHEMES: dict[str, Literal["starttls", "implicit", "none"]] = {
    "smtp+starttls": "starttls",
    "smtps": "implicit",
    "smtp": "none",
}
#: Upstream settings a URL does not say, kept from the config file's first upstream.
_KEPT = (
    "allow_insecure_auth",
    "ca_file",
    "helo",
    "timeout",
    "data_timeout",
    "max_recipients_per_message",
    "connections",
    "batch_size",
)


@dataclass(frozen=True, slots=True)
class Setting:
    """One value and where it came from (``--web`` or ``NOTIFY_RELAY_WEB``)."""

    value: Any
    origin: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Overrides:
    """The settings given by flags or variables; None: not given."""

    smtp: Setting | None = None
    web: Setting | None = None
    mail_dir: Setting | None = None
    upstream: Setting | None = None
    password_file: Setting | None = None
    password_env: Setting | None = None


def read_overrides(flags: Mapping[str, Any], environ: Mapping[str, str]) -> Overrides:
    """The overrides in parsed ``flags`` (argparse destinations) and ``environ``."""
    found: dict[str, Setting] = {}
    for name, variable in ENVIRONMENT.items():
        value = flags.get(name)
        if value:
            found[name] = Setting(value, f"--{name.replace('_', '-')}")
        elif environ.get(variable):
            text = environ[variable]
            value = [item for item in re.split(r"[,\s]+", text) if item] if name == "smtp" else text
            found[name] = Setting(value, variable)
    if environ.get(PASSWORD_ENV):
        found["password_env"] = Setting(PASSWORD_ENV, PASSWORD_ENV)
    return Overrides(**found)


def apply_overrides(config: RelayConfig, overrides: Overrides) -> RelayConfig:
    """A copy of ``config`` with ``overrides`` in force; raises :class:`ConfigError`.

    A new upstream names its password source as the flags say; errors reading it name the
    flag or variable (:func:`relay.credentials.read_credentials` reads it).
    """
    changes: dict[str, Any] = {}
    if overrides.smtp is not None:
        changes["listen"] = tuple(
            _parsed(parse_listener, item, overrides.smtp.origin) for item in overrides.smtp.value
        )
        if config.listen_tls and not any(isinstance(x, TcpListener) for x in changes["listen"]):
            raise ConfigError("listen_tls needs a TCP address", file=overrides.smtp.origin)
    if overrides.web is not None:
        web = overrides.web
        enabled = web.value != "off"
        listen = _parsed(parse_web_listener, web.value, web.origin) if enabled else None
        changes["web"] = dataclasses.replace(
            config.web, enabled=enabled, listen=listen or config.web.listen
        )
        check_web(changes["web"], file=web.origin)  # beyond loopback: needs users
    if overrides.mail_dir is not None:
        path = Path(overrides.mail_dir.value)
        changes["capture"] = dataclasses.replace(config.capture, path=path)
    upstream = _upstream(config, overrides)
    if upstream is not None:
        changes.update(upstream=upstream, upstreams=(upstream,))
    if not changes:
        return config
    return dataclasses.replace(config, **changes)


def _parsed(parse: Any, value: object, origin: str) -> Any:
    try:
        return parse(value)
    except ValueError as exc:
        raise ConfigError(str(exc), file=origin) from None


def _upstream(config: RelayConfig, overrides: Overrides) -> UpstreamConfig | None:
    """The upstream of ``--upstream URL`` and its password source, or None."""
    password = overrides.password_file or overrides.password_env
    if overrides.upstream is None:
        if password is not None:
            raise ConfigError(
                "only with --upstream (NOTIFY_RELAY_UPSTREAM); the config file's upstream "
                "names its own password source",
                file=password.origin,
            )
        return None
    origin, url = overrides.upstream.origin, urllib.parse.urlsplit(overrides.upstream.value)
    if url.scheme not in _SCHEMES:
        raise ConfigError(
            f"unknown scheme {url.scheme}:// (use smtp+starttls://, smtps:// or smtp://)",
            file=origin,
        )
    try:
        host, port = url.hostname, url.port
    except ValueError as exc:
        raise ConfigError(str(exc), file=origin) from None
    if not host or url.path not in ("", "/") or url.query or url.fragment:
        raise ConfigError(
            "no host, or more than scheme://[user@]host[:port] (such as "
            "smtp+starttls://you%40gmail.com@smtp.gmail.com:587)",
            file=origin,
        )
    if url.password is not None:
        raise ConfigError(
            "no password in the URL (argv and the environment of a process are easy to read): "
            f"use --password-file, {ENVIRONMENT['password_file']} or {PASSWORD_ENV}",
            file=origin,
        )
    user = urllib.parse.unquote(url.username) if url.username else None
    if user is None and password is not None:
        raise ConfigError("no user in the URL for the password", file=origin)
    if user is not None and password is None:
        raise ConfigError(
            f"a user needs --password-file, {ENVIRONMENT['password_file']} or {PASSWORD_ENV}",
            file=origin,
        )
    auth = config.listen_auth
    if auth is not None and auth.accept_any:  # never "any login" in front of a real upstream
        raise ConfigError(
            "listen_auth.accept_any in the config file is for capture mode only", file=origin
        )
    base = config.upstream or UpstreamConfig()
    kept = {name: getattr(base, name) for name in _KEPT}
    tls = _SCHEMES[url.scheme]
    if user is not None and tls == "none" and not kept["allow_insecure_auth"]:
        raise ConfigError(
            "smtp:// would send the password in clear: use smtp+starttls:// or smtps://, or "
            "set upstream.allow_insecure_auth: true in the config file",
            file=origin,
        )
    source: dict[str, Any] = {}
    if overrides.password_file is not None:
        source["password_file"] = Path(overrides.password_file.value)
    elif overrides.password_env is not None:
        source["password_env"] = overrides.password_env.value
    upstream = UpstreamConfig(host=host, port=port or 0, tls=tls, username=user, **source, **kept)
    return load_upstream(upstream, password.origin if password is not None else origin)
