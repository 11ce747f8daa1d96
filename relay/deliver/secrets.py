"""An upstream's secrets: its password, and its OAuth client secret, refresh token and
certificate key, read from the sources its config names.

The config (:class:`~relay.deliver.options.UpstreamConfig`) holds only where each secret
comes from; :func:`read_upstream_secrets` reads them into an :class:`UpstreamSecrets`
value, which :mod:`relay.credentials` keeps per upstream and delivery is handed
explicitly. Errors name the config file (or the ``serve`` flag) and the key.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from relay.deliver.oauth import TokenSource, load_client_certificate, token_source
from relay.deliver.options import UpstreamConfig, password_sources
from relay.errors import ConfigError
from relay.schema import where
from relay.secret import Secret, read_private, read_secret, read_secret_file

__all__ = [
    "NO_SECRETS",
    "SecretsByUpstream",
    "UpstreamSecrets",
    "read_upstream_secrets",
    "tokens_of",
]


@dataclass(frozen=True, slots=True, kw_only=True)
class UpstreamSecrets:
    """What one upstream logs in with; each None when its config names no source for it."""

    password: Secret | None = None
    client_secret: Secret | None = None
    refresh_token: Secret | None = None
    #: The PEM private key of ``oauth.client_certificate_file``.
    client_key: Secret | None = None


#: An upstream that logs in with nothing (an MX upstream, or one without AUTH).
NO_SECRETS = UpstreamSecrets()

#: Each upstream's secrets; an upstream not in it has :data:`NO_SECRETS`.
SecretsByUpstream = Mapping[UpstreamConfig, UpstreamSecrets]


def read_upstream_secrets(upstream: UpstreamConfig) -> UpstreamSecrets:
    """Read the password and the OAuth client secret, refresh token and certificate key
    that ``upstream`` names; raise :class:`~relay.errors.ConfigError` naming
    ``upstream.source`` and the key under ``upstream.section``."""
    if upstream.mx:
        return NO_SECRETS
    file, section = upstream.source, upstream.section
    password = None
    sources = password_sources(upstream)
    if sources and upstream.username is not None and upstream.auth == "password":
        key = where(section, sources[0])
        password = Secret(read_secret(upstream, sources[0], file=file, key=key))
    oauth = upstream.oauth
    if oauth is None:
        return UpstreamSecrets(password=password)
    key = where(section, "oauth")

    def secret_file(name: str, path: Path | None) -> Secret | None:
        if path is None:
            return None
        return Secret(read_secret_file(path, file=file, key=where(key, f"{name}_file")))

    client_key = None
    if oauth.client_key_file is not None:
        pem = read_private(oauth.client_key_file, file=file, key=where(key, "client_key_file"))
        try:
            certificate = Path(str(oauth.client_certificate_file)).read_bytes()
            load_client_certificate(certificate, pem)
        except (OSError, ValueError) as exc:
            what = f"cannot read it: {exc.strerror}" if isinstance(exc, OSError) else str(exc)
            name = "client_certificate_file" if isinstance(exc, OSError) else "client_key_file"
            raise ConfigError(what, file=file, key=where(key, name)) from None
        client_key = Secret(pem)
    return UpstreamSecrets(
        password=password,
        client_secret=secret_file("client_secret", oauth.client_secret_file),
        refresh_token=secret_file("refresh_token", oauth.refresh_token_file),
        client_key=client_key,
    )


def tokens_of(upstream: UpstreamConfig, secrets: UpstreamSecrets) -> TokenSource | None:
    """A new token source for an ``auth: xoauth2``/``oauthbearer`` upstream (None: it logs
    in with a password, or not at all)."""
    if upstream.auth == "password" or upstream.oauth is None:
        return None
    return token_source(
        upstream.oauth,
        client_secret=secrets.client_secret,
        refresh_token=secrets.refresh_token,
        client_key=secrets.client_key,
    )
