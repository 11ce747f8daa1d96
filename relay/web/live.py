"""Responses that wait for mail: the page's event stream and ``messages/wait`` for scripts."""

from __future__ import annotations

import asyncio
import json

from aiohttp import web

from relay.capture.events import MailEvent, MailEventKind
from relay.gmail import QuerySyntaxError
from relay.web.context import CLOSING, blocking, fail, query_error, store_of, timezone_of

__all__ = ["events", "wait"]

_KEEPALIVE = 15.0
_MAX_WAIT = 300


async def events(request: web.Request) -> web.StreamResponse:
    """``GET /api/v1/events``: server-sent events, one ``mail`` event per store change.

    ``data`` is ``{"kind": "new"|"deleted"|"changed"|"reset", "ids": [...]}``.
    """
    store = store_of(request)
    response = web.StreamResponse(
        headers={
            "Content-Type": "text/event-stream",
            "Cache-Control": "no-cache",
            "X-Accel-Buffering": "no",
        }
    )
    with store.events.subscribe() as queue:
        await response.prepare(request)
        await response.write(b"retry: 2000\n\n")
        closing = request.app[CLOSING]
        try:
            while not closing.is_set():
                event = await _next(queue, closing, _KEEPALIVE)
                if event is None:
                    await response.write(b": keep-alive\n\n")
                    continue
                data = json.dumps({"kind": event.kind.value, "ids": list(event.ids)})
                await response.write(f"event: mail\ndata: {data}\n\n".encode())
        except ConnectionResetError:  # the page went away
            pass
    return response


async def wait(request: web.Request) -> web.Response:
    """``GET /api/v1/messages/wait?q=&timeout=&as=``: the newest message matching ``q``.

    Answers at once if one is stored, else as soon as one arrives; 408 after ``timeout``
    seconds (default 30, at most 300).
    """
    store = store_of(request)
    query, recipient = request.query.get("q", ""), request.query.get("as") or None
    try:
        timeout = float(request.query.get("timeout", "30"))
    except ValueError:
        timeout = -1
    if not 0 <= timeout <= _MAX_WAIT:
        fail(400, f"timeout must be a number of seconds from 0 to {_MAX_WAIT}")

    async def newest(among: list[str] | None = None) -> dict[str, object] | None:
        try:
            found = await blocking(
                request,
                store.search,
                query,
                limit=1,
                recipient=recipient,
                among=among,
                timezone=timezone_of(request),
            )
        except QuerySyntaxError as exc:
            query_error(exc)
        return found.items[0] if found.items else None

    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    with store.events.subscribe() as queue:  # before the first look: nothing slips by
        item = await newest()
        while item is None and (left := deadline - loop.time()) > 0:
            event = await _next(queue, request.app[CLOSING], left)
            if event is None:
                break
            if event.kind is MailEventKind.NEW:
                item = await newest(list(event.ids))
            elif event.kind is MailEventKind.RESET:
                item = await newest()
    if item is None:
        fail(408, f"no message matching {query!r} within {timeout:g} s", query=query)
    return web.json_response(item)


async def _next(
    queue: asyncio.Queue[MailEvent], closing: asyncio.Event, timeout: float
) -> MailEvent | None:
    """The next event, or None after ``timeout`` seconds or when the server shuts down."""
    getting = asyncio.ensure_future(queue.get())
    stopping = asyncio.ensure_future(closing.wait())
    try:
        await asyncio.wait({getting, stopping}, timeout=timeout, return_when="FIRST_COMPLETED")
    finally:
        stopping.cancel()
        if not getting.done():
            getting.cancel()
    return getting.result() if getting.done() and not getting.cancelled() else None
