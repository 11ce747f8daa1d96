"""OAuth2 access tokens for XOAUTH2/OAUTHBEARER: the refresh-token and client-credentials
grants, a token command, and the consent steps (authorization code with PKCE, device code).

Tokens are :class:`~relay.secret.Secret` values and are never logged; a failure says what
the endpoint answered (``invalid_grant`` …), never what was sent. A refusal of the refresh
token or client carries the enhanced code 5.7.8, so delivery holds the upstream as it does
for a wrong password. HTTP is urllib in a worker thread: one short POST an hour.

Why not msal: it insists on discovering its authority from Microsoft's well-known
endpoints, so it cannot be pointed at a test token endpoint, and the three grants used here
are one form POST each. The certificate credential is an RS256 JWT client assertion
(RFC 7523) signed with ``cryptography``.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import secrets
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from relay.deliver.options import OAuthConfig
from relay.durable import write_durably
from relay.errors import UpstreamError
from relay.log import fields, logger
from relay.secret import Secret

__all__ = [
    "AccessToken",
    "ClientCredentialsTokens",
    "CommandTokens",
    "DeviceCode",
    "RefreshTokens",
    "TokenSource",
    "client_assertion",
    "code_from",
    "consent_url",
    "exchange_code",
    "load_client_certificate",
    "parse_token_response",
    "pkce_pair",
    "poll_device_code",
    "start_device_code",
    "store_refresh_token",
    "token_source",
]

#: A token is used until this many seconds (at most half its lifetime) before it expires.
_MARGIN = 300.0
#: Endpoint errors that mean the grant or client is wrong: the operator must act.
_REFUSALS = frozenset({"invalid_grant", "invalid_client", "unauthorized_client"})
_MAX_BODY = 64 * 1024
#: How the device-code grant waits between polls (a seam for tests of the CLI).
DEVICE_POLL_SLEEP: Callable[[float], None] = time.sleep


@dataclass(frozen=True, slots=True)
class AccessToken:
    """An access token and the time after which it is refreshed instead of used."""

    value: Secret
    usable_until: float


class TokenSource(Protocol):
    """Something that hands out a current access token."""

    async def token(self, *, fresh: bool = False) -> str:
        """A current token; ``fresh=True`` gets a new one (the upstream refused the last)."""
        ...


def parse_token_response(fields: Mapping[str, Any], now: float) -> tuple[AccessToken, str | None]:
    """The access token of a token endpoint's JSON answer, and a new refresh token if any."""
    value = fields.get("access_token")
    if not isinstance(value, str) or not value:
        raise UpstreamError(0, "the OAuth token endpoint answered without an access_token")
    try:
        lifetime = max(0.0, float(fields.get("expires_in", 3600)))
    except (TypeError, ValueError):
        lifetime = 3600.0
    usable_until = now + lifetime - min(_MARGIN, lifetime / 2)
    rotated = fields.get("refresh_token")
    return AccessToken(Secret(value), usable_until), rotated if isinstance(rotated, str) else None


def _exchange(url: str, form: Mapping[str, str], timeout: float) -> tuple[int, dict[str, Any]]:
    """POST ``form`` to an OAuth endpoint: its HTTP status and JSON answer (blocking).

    Only a failure to get an answer at all raises.
    """
    request = urllib.request.Request(
        url,
        data=urllib.parse.urlencode(form).encode(),
        headers={"Accept": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, _json(response.read(_MAX_BODY))
    except urllib.error.HTTPError as exc:
        return exc.code, _json(exc.read(_MAX_BODY))
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", None) or exc
        where = urllib.parse.urlsplit(url).netloc
        raise UpstreamError(0, f"OAuth token endpoint {where}: {reason}") from None


def _post(
    url: str,
    form: Mapping[str, str],
    timeout: float,
    *,
    fix: str = "get a new refresh token with: notify-relay oauth",
) -> dict[str, Any]:
    """POST ``form`` and return the JSON answer; an error answer raises :class:`UpstreamError`.

    ``fix``: what the operator should do when the grant or client is refused.
    """
    status, answer = _exchange(url, form, timeout)
    if status == 200:
        return answer
    where = urllib.parse.urlsplit(url).netloc
    error = str(answer.get("error", ""))
    detail = f"{error} ({answer.get('error_description', '')})" if error else ""
    if error in _REFUSALS:
        raise UpstreamError(0, f"5.7.8 OAuth token endpoint {where} refused: {detail}; {fix}")
    raise UpstreamError(0, f"OAuth token endpoint {where} answered HTTP {status} {detail}".rstrip())


def _json(body: bytes) -> dict[str, Any]:
    try:
        data = json.loads(body)
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def store_refresh_token(path: Path, token: str) -> None:
    """Write ``token`` to ``path`` durably with mode 0600 (blocking)."""
    write_durably(path, f"{token}\n".encode(), path.parent)
    path.chmod(0o600)


class _CachedTokens:
    """Access tokens cached until shortly before they expire; subclasses fetch new ones.

    ``client_secret``, ``refresh_token`` and ``client_key``: what ``oauth``'s files hold
    (:func:`relay.deliver.secrets.read_upstream_secrets`).
    """

    def __init__(
        self,
        oauth: OAuthConfig,
        *,
        client_secret: Secret | None = None,
        refresh_token: Secret | None = None,
        client_key: Secret | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.oauth = oauth
        self.client_secret, self.client_key = client_secret, client_key
        self._refresh_token = refresh_token
        self._clock = clock
        self._cached: AccessToken | None = None
        self._lock = asyncio.Lock()

    async def token(self, *, fresh: bool = False) -> str:
        """The cached token, or a new one when it is near expiry or ``fresh`` is asked."""
        async with self._lock:
            cached = self._cached
            if fresh or cached is None or self._clock() >= cached.usable_until:
                cached = self._cached = await asyncio.to_thread(self._fetch)
                host = urllib.parse.urlsplit(self.oauth.token_endpoint).netloc
                until = time.strftime("%H:%M:%S", time.localtime(cached.usable_until))
                logger.info(
                    "oauth: new access token from %s, used until %s",
                    host,
                    until,
                    extra=fields(host=host, until=until),
                )
            return cached.value.reveal()

    def _fetch(self) -> AccessToken:
        raise NotImplementedError


class RefreshTokens(_CachedTokens):
    """Access tokens from a refresh token.

    A refresh token the endpoint rotates (Microsoft does) is written back to
    ``refresh_token_file``, so the relay keeps working for months unattended.
    """

    def _fetch(self) -> AccessToken:
        oauth = self.oauth
        if self._refresh_token is None:
            raise UpstreamError(0, "5.7.8 no OAuth refresh token; run: notify-relay oauth")
        form = {
            "grant_type": "refresh_token",
            "refresh_token": self._refresh_token.reveal(),
            "client_id": str(oauth.client_id),
        }
        if self.client_secret is not None:
            form["client_secret"] = self.client_secret.reveal()
        if oauth.provider != "google":  # Microsoft requires the scope; Google takes none
            form["scope"] = oauth.scopes
        answer = _post(oauth.token_endpoint, form, oauth.timeout)
        token, rotated = parse_token_response(answer, self._clock())
        if rotated and rotated != self._refresh_token.reveal() and oauth.refresh_token_file:
            store_refresh_token(oauth.refresh_token_file, rotated)
            self._refresh_token = Secret(rotated)
            logger.info(
                "oauth: stored the rotated refresh token in %s",
                oauth.refresh_token_file,
                extra=fields(path=str(oauth.refresh_token_file)),
            )
        return token


class ClientCredentialsTokens(_CachedTokens):
    """App-only access tokens for the client itself (``grant: client_credentials``), with a
    client secret or a certificate's signed assertion; there is no refresh token."""

    def _fetch(self) -> AccessToken:
        answer = _post(
            self.oauth.token_endpoint,
            client_credentials_form(
                self.oauth, self._clock(), client_secret=self.client_secret, key=self.client_key
            ),
            self.oauth.timeout,
            fix="check the client secret or certificate and the app registration",
        )
        return parse_token_response(answer, self._clock())[0]


def client_credentials_form(
    oauth: OAuthConfig, now: float, *, client_secret: Secret | None, key: Secret | None
) -> dict[str, str]:
    """The token request of the client-credentials grant (RFC 6749 4.4): a signed
    assertion with the certificate's ``key``, else the ``client_secret``."""
    form = {
        "grant_type": "client_credentials",
        "client_id": str(oauth.client_id),
        "scope": oauth.scopes,
    }
    if key is not None and oauth.client_certificate_file is not None:
        form["client_assertion_type"] = _ASSERTION_TYPE
        form["client_assertion"] = client_assertion(oauth, key, now)
    elif client_secret is not None:
        form["client_secret"] = client_secret.reveal()
    return form


_ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def load_client_certificate(
    certificate: bytes, key_pem: str
) -> tuple[x509.Certificate, rsa.RSAPrivateKey]:
    """The certificate and its RSA key; ValueError says what does not fit."""
    try:
        cert = x509.load_pem_x509_certificate(certificate)
    except ValueError:
        raise ValueError("client_certificate_file holds no PEM certificate") from None
    try:
        key = serialization.load_pem_private_key(key_pem.encode(), password=None)
    except (ValueError, TypeError):
        raise ValueError("client_key_file holds no unencrypted PEM private key") from None
    if not isinstance(key, rsa.RSAPrivateKey):
        raise ValueError("client_key_file: Microsoft Entra ID takes RSA keys only")
    if key.public_key().public_numbers() != cert.public_key().public_numbers():  # type: ignore[union-attr]
        raise ValueError("client_key_file is not the key of client_certificate_file")
    return cert, key


def client_assertion(oauth: OAuthConfig, key_pem: Secret, now: float) -> str:
    """A signed JWT proving the client holds the certificate's key, ``key_pem`` (RFC 7523,
    RS256).

    The header's ``x5t`` is the certificate's SHA-1 thumbprint, as Entra ID expects; the
    assertion is valid for ten minutes and used once.
    """
    assert oauth.client_certificate_file is not None
    try:
        pem = oauth.client_certificate_file.read_bytes()
    except OSError as exc:
        raise UpstreamError(0, f"cannot read {oauth.client_certificate_file}: {exc}") from None
    try:
        cert, key = load_client_certificate(pem, key_pem.reveal())
    except ValueError as exc:
        raise UpstreamError(0, f"5.7.8 {exc}") from None
    thumbprint = cert.fingerprint(hashes.SHA1())  # x5t is the SHA-1 thumbprint by definition
    header = {"alg": "RS256", "typ": "JWT", "x5t": _b64url(thumbprint)}
    claims = {
        "aud": oauth.token_endpoint,
        "iss": oauth.client_id,
        "sub": oauth.client_id,
        "jti": str(uuid.uuid4()),
        "nbf": int(now),
        "iat": int(now),
        "exp": int(now) + 600,
    }
    signing_input = ".".join(
        _b64url(json.dumps(part, separators=(",", ":")).encode()) for part in (header, claims)
    )
    signature = key.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
    return f"{signing_input}.{_b64url(signature)}"


class CommandTokens:
    """Access tokens printed by a program (its first output line), run for every login."""

    def __init__(self, command: str, timeout: float) -> None:
        self.command = command
        self.timeout = timeout

    async def token(self, *, fresh: bool = False) -> str:
        """Run the command and return the token it printed."""
        return await asyncio.to_thread(self._run)

    def _run(self) -> str:
        try:
            done = subprocess.run(
                self.command, shell=True, capture_output=True, text=True, timeout=self.timeout
            )
        except subprocess.TimeoutExpired:
            message = f"token_command did not finish within {self.timeout:.0f} s"
            raise UpstreamError(0, message) from None
        lines = done.stdout.splitlines()
        if done.returncode != 0 or not lines or not lines[0].strip():
            raise UpstreamError(
                0, f"token_command failed (exit {done.returncode}) or printed nothing"
            )
        return lines[0].strip()


def token_source(
    oauth: OAuthConfig,
    *,
    client_secret: Secret | None,
    refresh_token: Secret | None,
    client_key: Secret | None,
) -> TokenSource:
    """The token source ``oauth`` describes, with the secrets its files hold."""
    if oauth.token_command is not None:
        return CommandTokens(oauth.token_command, oauth.timeout)
    kind = ClientCredentialsTokens if oauth.grant == "client_credentials" else RefreshTokens
    return kind(
        oauth, client_secret=client_secret, refresh_token=refresh_token, client_key=client_key
    )


def pkce_pair() -> tuple[str, str]:
    """A PKCE code verifier and its S256 challenge (RFC 7636)."""
    verifier = secrets.token_urlsafe(48)
    digest = hashlib.sha256(verifier.encode()).digest()
    return verifier, base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def consent_url(
    oauth: OAuthConfig, *, redirect_uri: str, challenge: str, state: str, login_hint: str | None
) -> str:
    """The address where the admin signs in and allows the relay to send mail."""
    params = {
        "client_id": str(oauth.client_id),
        "redirect_uri": redirect_uri,
        "response_type": "code",
        "scope": oauth.scopes,
        "state": state,
        "code_challenge": challenge,
        "code_challenge_method": "S256",
        "access_type": "offline",  # Google: issue a refresh token
        "prompt": "consent",
    }
    if login_hint:
        params["login_hint"] = login_hint
    return f"{oauth.consent_endpoint}?{urllib.parse.urlencode(params)}"


def code_from(pasted: str, state: str) -> str:
    """The authorization code in what the admin pasted: the code, or the whole redirect URL."""
    text = pasted.strip()
    if "=" not in text:
        if not text:
            raise ValueError("nothing pasted")
        return text
    query = urllib.parse.parse_qs(urllib.parse.urlsplit(text).query or text)
    if "error" in query:
        raise ValueError(f"the provider answered: {query['error'][0]}")
    if query.get("state", [state])[0] != state:
        raise ValueError("the state in the URL does not match this run; start again")
    if "code" not in query:
        raise ValueError("no code= in what was pasted")
    return query["code"][0]


def exchange_code(
    oauth: OAuthConfig, code: str, *, redirect_uri: str, verifier: str, client_secret: str | None
) -> tuple[AccessToken, str | None]:
    """Trade an authorization code for tokens (blocking); returns the refresh token too."""
    form = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": redirect_uri,
        "client_id": str(oauth.client_id),
        "code_verifier": verifier,
    }
    if client_secret:
        form["client_secret"] = client_secret
    return parse_token_response(_post(oauth.token_endpoint, form, oauth.timeout), time.time())


@dataclass(frozen=True, slots=True)
class DeviceCode:
    """A started device-code grant (RFC 8628): what the admin types where, and how to poll."""

    device_code: Secret
    user_code: str
    verification_uri: str
    interval: float
    expires_at: float
    message: str


def start_device_code(oauth: OAuthConfig, *, client_secret: str | None) -> DeviceCode:
    """Ask the device-authorization endpoint for a user code (blocking)."""
    form = {"client_id": str(oauth.client_id), "scope": oauth.scopes}
    if client_secret:
        form["client_secret"] = client_secret
    answer = _post(str(oauth.device_code_endpoint), form, oauth.timeout)
    try:
        code = DeviceCode(
            device_code=Secret(str(answer["device_code"])),
            user_code=str(answer["user_code"]),
            verification_uri=str(answer.get("verification_uri") or answer["verification_url"]),
            interval=float(answer.get("interval", 5)),
            expires_at=time.time() + float(answer.get("expires_in", 900)),
            message=str(answer.get("message", "")),
        )
    except (KeyError, TypeError, ValueError):
        raise UpstreamError(0, "the device-code endpoint answered without a user code") from None
    return code


def poll_device_code(
    oauth: OAuthConfig,
    code: DeviceCode,
    *,
    client_secret: str | None,
    sleep: Callable[[float], None] | None = None,
    clock: Callable[[], float] = time.time,
) -> tuple[AccessToken, str | None]:
    """Poll the token endpoint until the admin has signed in (blocking); the tokens.

    Waits ``interval`` seconds between polls, five more after each ``slow_down``
    (RFC 8628 3.5); a denial or the code's expiry raises :class:`UpstreamError`.
    """
    form = {
        "grant_type": "urn:ietf:params:oauth:grant-type:device_code",
        "device_code": code.device_code.reveal(),
        "client_id": str(oauth.client_id),
    }
    if client_secret:
        form["client_secret"] = client_secret
    interval, sleep = code.interval, sleep or DEVICE_POLL_SLEEP
    while clock() < code.expires_at:
        sleep(interval)
        status, answer = _exchange(oauth.token_endpoint, form, oauth.timeout)
        error = answer.get("error")
        if status == 200 and not error:
            return parse_token_response(answer, clock())
        if error == "slow_down":
            interval += 5
        elif error != "authorization_pending":
            raise UpstreamError(0, f"sign-in not completed: {error or f'HTTP {status}'}")
    raise UpstreamError(0, "the code expired before anyone signed in; run this again")
