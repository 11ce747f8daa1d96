"""OAuth2 access tokens for XOAUTH2/OAUTHBEARER: refresh flow, token command, consent steps.

Tokens are :class:`~relay.secret.Secret` values and are never logged; a failure says what
the endpoint answered (``invalid_grant`` …), never what was sent. A refusal of the refresh
token or client carries the enhanced code 5.7.8, so delivery holds the upstream as it does
for a wrong password. HTTP is urllib in a worker thread: one short POST an hour.
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
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from relay.deliver.options import OAuthConfig
from relay.durable import write_durably
from relay.errors import UpstreamError
from relay.log import logger
from relay.secret import Secret

__all__ = [
    "AccessToken",
    "CommandTokens",
    "RefreshTokens",
    "TokenSource",
    "code_from",
    "consent_url",
    "exchange_code",
    "parse_token_response",
    "pkce_pair",
    "store_refresh_token",
    "token_source",
]

#: A token is used until this many seconds (at most half its lifetime) before it expires.
_MARGIN = 300.0
#: Endpoint errors that mean the grant or client is wrong: the operator must act.
_REFUSALS = frozenset({"invalid_grant", "invalid_client", "unauthorized_client"})
_MAX_BODY = 64 * 1024


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


def _post(url: str, form: Mapping[str, str], timeout: float) -> dict[str, Any]:
    """POST ``form`` to a token endpoint and return its JSON answer (blocking)."""
    request = urllib.request.Request(
        url,
        data=urllib.parse.urlencode(form).encode(),
        headers={"Accept": "application/json"},
    )
    where = urllib.parse.urlsplit(url).netloc
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return _json(response.read(_MAX_BODY))
    except urllib.error.HTTPError as exc:
        answer = _json(exc.read(_MAX_BODY))
        error = str(answer.get("error", ""))
        detail = f"{error} ({answer.get('error_description', '')})" if error else ""
        if error in _REFUSALS:
            raise UpstreamError(
                0,
                f"5.7.8 OAuth token endpoint {where} refused: {detail}; "
                "get a new refresh token with: notify-relay oauth",
            ) from None
        raise UpstreamError(
            0, f"OAuth token endpoint {where} answered HTTP {exc.code} {detail}".rstrip()
        ) from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", None) or exc
        raise UpstreamError(0, f"OAuth token endpoint {where}: {reason}") from None


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


class RefreshTokens:
    """Access tokens from a refresh token, cached until shortly before they expire.

    A refresh token the endpoint rotates (Microsoft does) is written back to
    ``refresh_token_file``, so the relay keeps working for months unattended.
    """

    def __init__(self, oauth: OAuthConfig, *, clock: Callable[[], float] = time.time) -> None:
        self.oauth = oauth
        self._clock = clock
        self._refresh_token = oauth.refresh_token
        self._cached: AccessToken | None = None
        self._lock = asyncio.Lock()

    async def token(self, *, fresh: bool = False) -> str:
        """The cached token, or a new one when it is near expiry or ``fresh`` is asked."""
        async with self._lock:
            cached = self._cached
            if fresh or cached is None or self._clock() >= cached.usable_until:
                cached = self._cached = await asyncio.to_thread(self._refresh)
            return cached.value.reveal()

    def _refresh(self) -> AccessToken:
        oauth = self.oauth
        if self._refresh_token is None:
            raise UpstreamError(0, "5.7.8 no OAuth refresh token; run: notify-relay oauth")
        form = {
            "grant_type": "refresh_token",
            "refresh_token": self._refresh_token.reveal(),
            "client_id": str(oauth.client_id),
        }
        if oauth.client_secret is not None:
            form["client_secret"] = oauth.client_secret.reveal()
        if oauth.provider != "google":  # Microsoft requires the scope; Google takes none
            form["scope"] = oauth.scopes
        answer = _post(oauth.token_endpoint, form, oauth.timeout)
        token, rotated = parse_token_response(answer, self._clock())
        if rotated and rotated != self._refresh_token.reveal() and oauth.refresh_token_file:
            store_refresh_token(oauth.refresh_token_file, rotated)
            self._refresh_token = Secret(rotated)
            logger.info("oauth: stored the rotated refresh token in %s", oauth.refresh_token_file)
        logger.info(
            "oauth: new access token from %s, used until %s",
            urllib.parse.urlsplit(oauth.token_endpoint).netloc,
            time.strftime("%H:%M:%S", time.localtime(token.usable_until)),
        )
        return token


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


def token_source(oauth: OAuthConfig) -> TokenSource:
    """The token source ``oauth`` describes."""
    if oauth.token_command is not None:
        return CommandTokens(oauth.token_command, oauth.timeout)
    return RefreshTokens(oauth)


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
