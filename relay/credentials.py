"""The secrets and keys the configuration names, read once at start and on each reload.

The config (:mod:`relay.config`) is plain frozen data: file names, variables and commands,
never what they give. :func:`read_credentials` reads them into one :class:`Credentials`
value, which the service hands to the components that need it. Every error names the
config file and the key, as config errors do.
"""

from __future__ import annotations

import ssl
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import MappingProxyType

from relay.capture.options import WebhookConfig
from relay.config import RelayConfig
from relay.deliver.dkim import DkimConfig, SigningKey, signing_key
from relay.deliver.options import UpstreamConfig
from relay.deliver.secrets import SecretsByUpstream, UpstreamSecrets, read_upstream_secrets
from relay.errors import ConfigError
from relay.receive.options import ListenTlsConfig, server_context
from relay.receive.selfsigned import ensure_certificate
from relay.receive.users import PasswordHash, read_users
from relay.secret import Secret, read_private, read_secret

__all__ = ["Credentials", "read_credentials"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Credentials:
    """What the config's secret sources hold: the listener's TLS context (and the
    certificate in it) and AUTH users, the page's users, the DKIM keys, the webhook secrets
    and each upstream's password and OAuth secrets. The empty value fits a config that names
    none of them."""

    listen_tls: ssl.SSLContext | None = None
    #: The certificate ``listen_tls`` holds: ``listen_tls.cert_file``, or the self-signed one
    #: made for capture mode.
    listen_certificate: Path | None = None
    listen_users: Mapping[str, PasswordHash] = field(default_factory=lambda: MappingProxyType({}))
    dkim_keys: tuple[SigningKey, ...] = ()
    #: The page's HTTP basic-auth users (``web.users_file``; empty: no login asked).
    web_users: Mapping[str, PasswordHash] = field(default_factory=lambda: MappingProxyType({}))
    #: Each ``capture.webhooks`` entry's signing secret, in order (None: unsigned).
    webhook_secrets: tuple[Secret | None, ...] = ()
    #: Each upstream's secrets (``upstreams`` and ``capture.release.upstream``), keyed by
    #: its config; delivery is handed this mapping.
    upstream: SecretsByUpstream = field(default_factory=lambda: MappingProxyType({}))


def read_credentials(config: RelayConfig, *, upstream: bool = True) -> Credentials:
    """Read the listener's certificate and key, its users file, the page's users, the DKIM
    keys, the webhook secrets and each upstream's password and OAuth secrets that ``config``
    names; raise :class:`~relay.errors.ConfigError`.

    ``upstream=False`` leaves the upstreams' secrets unread (``Credentials.upstream`` is
    empty): for a process or command that never logs in upstream, whose user may not be
    able to read them. Password commands run here: call it off the event loop on reload.
    """
    file, tls, auth = config.source, config.listen_tls, config.listen_auth
    hooks = config.capture.webhooks
    users = (
        read_users(auth.users_file, file=file, key="listen_auth.users_file")
        if auth is not None and auth.users_file is not None
        else {}
    )
    if tls is not None and tls.cert_file is None:  # capture mode: a self-signed certificate
        try:
            cert_file, key_file = ensure_certificate(config.capture.path / "tls", config.hostname)
        except OSError as exc:
            message = f"cannot make a certificate: {exc}"
            raise ConfigError(message, file=file, key="listen_tls") from None
        tls = replace(tls, cert_file=cert_file, key_file=key_file)
    web = config.web.users_file
    web_users = read_users(web, file=file, key="web.users_file") if web is not None else {}
    return Credentials(
        listen_tls=_listen_context(tls, file) if tls is not None else None,
        listen_certificate=tls.cert_file if tls is not None else None,
        listen_users=MappingProxyType(users),
        web_users=MappingProxyType(web_users),
        dkim_keys=_dkim_keys(config.dkim, file),
        webhook_secrets=tuple(_webhook_secret(hook, n, file) for n, hook in enumerate(hooks)),
        upstream=MappingProxyType(_upstream_secrets(config) if upstream else {}),
    )


def _upstream_secrets(config: RelayConfig) -> dict[UpstreamConfig, UpstreamSecrets]:
    """The secrets of every upstream ``config`` delivers or releases through."""
    release = config.capture.release.upstream
    chain = (*config.upstreams, *((release,) if release is not None else ()))
    found: dict[UpstreamConfig, UpstreamSecrets] = {}
    for each in chain:
        if each not in found:  # the same sources give the same secrets: read them once
            found[each] = read_upstream_secrets(each)
    return found


def _webhook_secret(hook: WebhookConfig, n: int, file: str) -> Secret | None:
    """The signing secret of ``capture.webhooks[n]``, or None when it names none."""
    if not hook.secret_sources:
        return None
    source = hook.secret_sources[0]
    return Secret(read_secret(hook, source, file=file, key=f"capture.webhooks[{n}].{source}"))


def _dkim_keys(entries: Sequence[DkimConfig], file: str) -> tuple[SigningKey, ...]:
    """Read each ``dkim`` entry's private key (owner-only, PEM, matching its algorithm)."""
    keys = []
    for n, entry in enumerate(entries):
        key, path = f"dkim[{n}].private_key_file", entry.private_key_file
        try:
            keys.append(signing_key(entry, read_private(path, file=file, key=key).encode()))
        except ValueError as exc:
            raise ConfigError(f"{path}: {exc}", file=file, key=key) from None
    return tuple(keys)


def _listen_context(tls: ListenTlsConfig, file: str) -> ssl.SSLContext:
    """The listener's TLS context; an error names the file that is missing or wrong."""
    assert tls.cert_file is not None
    assert tls.key_file is not None
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
