"""The aiohttp application: every route in one table, and the guards every request passes.

Guards: on a loopback listener only loopback host names are served (a web page cannot
reach the API through DNS rebinding); requests that change something (POST, DELETE) must
come from the page's own origin (no cross-site forms); every response says ``nosniff``
and carries a Content Security Policy (the page's own, or "nothing at all" for data).
"""

from __future__ import annotations

import asyncio
import ipaddress
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING

from aiohttp import web

from relay.web import api, live, ops
from relay.web.context import CLOSING, RELAY, WORKERS, ApiError

if TYPE_CHECKING:
    from relay.service import Relay

__all__ = ["STATIC", "create_app"]

STATIC = Path(__file__).with_name("static")
_UNSAFE = frozenset({"POST", "PUT", "PATCH", "DELETE"})
_LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost"})
_NO_CONTENT = "default-src 'none'; frame-ancestors 'none'"
_WORKERS = 4  # threads for store calls; SQLite readers run side by side
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def create_app(relay: Relay) -> web.Application:
    """The app serving ``relay``'s capture store and queue."""
    app = web.Application(middlewares=[_guard], client_max_size=1024 * 1024)
    app[RELAY] = relay
    app[CLOSING] = asyncio.Event()
    app[WORKERS] = ThreadPoolExecutor(_WORKERS, thread_name_prefix="web")
    app.on_shutdown.append(_closing)
    app.on_cleanup.append(_workers_done)
    app.add_routes(
        [
            web.get("/", api.page),
            web.static("/static", STATIC, append_version=False),
            web.get("/api/v1/openapi.yaml", api.openapi),
            web.get("/api/v1/messages", api.list_messages),
            web.delete("/api/v1/messages", api.delete_messages),
            web.get("/api/v1/messages/wait", live.wait),
            web.get("/api/v1/messages/{id}", api.get_message),
            web.delete("/api/v1/messages/{id}", api.delete_message),
            web.get("/api/v1/messages/{id}/raw", api.raw),
            web.get("/api/v1/messages/{id}/html", api.html),
            web.get("/api/v1/messages/{id}/parts/{n:\\d+}", api.part),
            web.post("/api/v1/messages/{id}/release", api.release),
            web.get("/api/v1/recipients", api.recipients),
            web.get("/api/v1/queue", api.queue),
            web.get("/api/v1/faults", api.faults),
            web.put("/api/v1/faults", api.set_faults),
            web.delete("/api/v1/faults", api.set_faults),
            web.get("/api/v1/events", live.events),
            *ops.routes(relay),
        ]
    )
    return app


async def _closing(app: web.Application) -> None:
    app[CLOSING].set()


async def _workers_done(app: web.Application) -> None:
    app[WORKERS].shutdown(wait=False, cancel_futures=True)


@web.middleware
async def _guard(request: web.Request, handler: Handler) -> web.StreamResponse:
    refusal = _refusal(request)
    if refusal is not None:
        return web.json_response({"error": "forbidden", "reason": refusal}, status=403)
    try:
        response = await handler(request)
    except ApiError as exc:
        response = web.json_response(exc.body, status=exc.status)
    response.headers.setdefault("Content-Security-Policy", _NO_CONTENT)
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("Referrer-Policy", "no-referrer")
    return response


def _refusal(request: web.Request) -> str | None:
    """Why ``request`` is refused (DNS rebinding or a cross-site change), or None."""
    host = (request.host or "").rsplit(":", 1)[0].strip("[]").lower()
    local = request.transport.get_extra_info("sockname") if request.transport else None
    if local and _is_loopback(str(local[0])) and not _is_loopback(host):
        return f"host {host!r} is not this loopback listener (DNS rebinding?)"
    if request.method in _UNSAFE:
        site = request.headers.get("Sec-Fetch-Site", "same-origin")
        origin = request.headers.get("Origin")
        if site not in ("same-origin", "none") or (
            origin is not None and origin != f"{request.scheme}://{request.host}"
        ):
            return "changes are only accepted from this page's own origin"
    return None


def _is_loopback(host: str) -> bool:
    if host in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
