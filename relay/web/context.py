"""What handlers reach through the app: its dependencies, the settings in force, JSON errors."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, NoReturn, ParamSpec, TypeVar

from aiohttp import web

from relay.capture.maildir import CaptureStore
from relay.gmail import QuerySyntaxError
from relay.web.deps import WebDeps, WebSettings

__all__ = [
    "CLOSING",
    "DEPS",
    "SETTINGS",
    "WORKERS",
    "ApiError",
    "InForce",
    "blocking",
    "deps_of",
    "fail",
    "query_error",
    "settings_of",
    "store_of",
    "timezone_of",
]

_ERRORS = {
    400: "bad request",
    403: "forbidden",
    404: "not found",
    408: "timeout",
    409: "conflict",
    502: "upstream failed",
}


class InForce:
    """The settings in force; :meth:`relay.web.server.WebServer.reconfigure` replaces them."""

    def __init__(self, settings: WebSettings) -> None:
        self.settings = settings


DEPS: web.AppKey[WebDeps] = web.AppKey("deps")
SETTINGS: web.AppKey[InForce] = web.AppKey("settings")
#: Set when the server shuts down: long-running responses (events, wait) end.
CLOSING: web.AppKey[asyncio.Event] = web.AppKey("closing")
#: The page's own threads for store calls: a slow search never holds up the SMTP side,
#: which uses the loop's default executor.
WORKERS: web.AppKey[ThreadPoolExecutor] = web.AppKey("workers")

P = ParamSpec("P")
T = TypeVar("T")


async def blocking(
    request: web.Request, call: Callable[P, T], *args: P.args, **kwargs: P.kwargs
) -> T:
    """Run a blocking ``call`` in the web's own threads."""
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(
        request.app[WORKERS], functools.partial(call, *args, **kwargs)
    )


def deps_of(request: web.Request) -> WebDeps:
    """The parts the app serves."""
    return request.app[DEPS]


def settings_of(request: web.Request) -> WebSettings:
    """The settings in force (a reload replaces them)."""
    return request.app[SETTINGS].settings


def store_of(request: web.Request) -> CaptureStore:
    """The capture store; 404 with a reason when capture is off."""
    store = request.app[DEPS].capture
    if store is None:
        fail(404, "capture is off: no messages are kept (set capture: true)")
    return store


def timezone_of(request: web.Request) -> str:
    """The zone of calendar dates in queries (the filters' zone)."""
    return settings_of(request).timezone


class ApiError(Exception):
    """A request that cannot be served; the app answers ``status`` with ``body`` as JSON."""

    def __init__(self, status: int, body: dict[str, Any]) -> None:
        super().__init__(status, body)
        self.status = status
        self.body = body


def fail(status: int, reason: str, **extra: Any) -> NoReturn:
    """Stop the handler with a JSON error: ``{"error": ..., "reason": ..., **extra}``."""
    raise ApiError(status, {"error": _ERRORS.get(status, "error"), "reason": reason, **extra})


def query_error(exc: QuerySyntaxError) -> NoReturn:
    """Stop with 400 naming the column of ``exc`` and what was expected there."""
    fail(400, str(exc), query=exc.query, column=exc.column, expected=exc.expected)
