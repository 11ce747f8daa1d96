"""The guards every request passes, as one aiohttp middleware, on every bind.

1. Host: only this relay's own names and addresses are served (:mod:`relay.web.hosts`),
   so a page on another site cannot reach the API through DNS rebinding.
2. Changes (POST, PUT, PATCH, DELETE) must come from the page's own origin: a browser's
   ``Sec-Fetch-Site`` and ``Origin`` must not name another site (no cross-site forms).
3. With ``web.users_file``, HTTP basic auth (the hashes of :mod:`relay.receive.users`) on
   everything but the health probes. A check costs a slow hash in a worker thread, at
   most two at a time; a login that passed is remembered for the process's life (until
   the users change), since the browser sends it with every request.

Every response says ``nosniff`` and carries a Content Security Policy (the page's own, or
"nothing at all" for data).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import hmac
import secrets
from collections.abc import Awaitable, Callable, Mapping
from urllib.parse import urlsplit

from aiohttp import web
from aiohttp.typedefs import Middleware

from relay.receive.users import PasswordHash, check_login
from relay.web.context import ApiError, blocking, settings_of
from relay.web.hosts import host_name, host_served

__all__ = ["guard"]

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

_UNSAFE = frozenset({"POST", "PUT", "PATCH", "DELETE"})
_SAME_SITE = frozenset({"same-origin", "none"})
#: Orchestrators probe these without credentials; they show no mail.
_OPEN = frozenset({"/livez", "/readyz"})
_NO_CONTENT = "default-src 'none'; frame-ancestors 'none'"
_CHALLENGE = 'Basic realm="notify-relay", charset="UTF-8"'
_REMEMBERED = 64  # logins kept as checked; more are checked again


def guard() -> Middleware:
    """The middleware (with its own memory of logins that passed)."""
    logins = _Logins()

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        settings = settings_of(request)
        refusal = _host_refusal(request) or _change_refusal(request)
        if refusal is not None:
            return web.json_response({"error": "forbidden", "reason": refusal}, status=403)
        needs_login = bool(settings.users) and request.path not in _OPEN
        if needs_login and not await logins.check(request, settings.users):
            return web.json_response(
                {"error": "unauthorized", "reason": "log in: HTTP basic auth (web.users_file)"},
                status=401,
                headers={"WWW-Authenticate": _CHALLENGE},
            )
        try:
            response = await handler(request)
        except ApiError as exc:
            response = web.json_response(exc.body, status=exc.status)
        response.headers.setdefault("Content-Security-Policy", _NO_CONTENT)
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Referrer-Policy", "no-referrer")
        return response

    return middleware


def _host_refusal(request: web.Request) -> str | None:
    """Why the request's Host is not served here (DNS rebinding?), or None."""
    settings = settings_of(request).web
    host = host_name(request.headers.get("Host", ""))
    local = request.transport.get_extra_info("sockname") if request.transport else None
    served = host_served(
        host,
        local=str(local[0]) if local else None,
        listen=settings.listen.host,
        allowed=settings.allowed_hosts,
    )
    if served:
        return None
    return f"host {host!r} is not served here (DNS rebinding?): add it to web.allowed_hosts"


def _change_refusal(request: web.Request) -> str | None:
    """Why a change is refused (it comes from another site), or None."""
    if request.method not in _UNSAFE:
        return None
    site = request.headers.get("Sec-Fetch-Site")
    origin = request.headers.get("Origin")
    own = request.headers.get("Host", "").lower()
    if (site is not None and site not in _SAME_SITE) or (
        origin is not None and urlsplit(origin.lower()).netloc != own
    ):
        return "changes are only accepted from this page's own origin"
    return None


class _Logins:
    """Checks basic-auth credentials against the users; remembers the ones that passed."""

    def __init__(self) -> None:
        self._key = secrets.token_bytes(32)  # what is remembered is keyed, not a bare hash
        self._passed: dict[tuple[str, bytes], PasswordHash] = {}
        self._checking = asyncio.Semaphore(2)  # a check holds 32 MiB for 0.1 s

    async def check(self, request: web.Request, users: Mapping[str, PasswordHash]) -> bool:
        """Whether ``request`` carries the login and password of one of ``users``."""
        credentials = _basic(request.headers.get("Authorization", ""))
        if credentials is None:
            return False
        login, password = credentials
        key = (login, hmac.digest(self._key, password, hashlib.sha256))
        stored = users.get(login)
        if stored is not None and self._passed.get(key) is stored:
            return True
        async with self._checking:
            passed = await blocking(request, check_login, users, login, password)
        if passed and stored is not None:
            if len(self._passed) >= _REMEMBERED:
                self._passed.clear()
            self._passed[key] = stored
        return passed


def _basic(header: str) -> tuple[str, bytes] | None:
    """Login and password of an ``Authorization: Basic`` header, or None."""
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True)
        login, sep, password = decoded.partition(b":")
        return (login.decode(), password) if sep else None
    except (binascii.Error, UnicodeDecodeError):
        return None
