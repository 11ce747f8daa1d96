"""The aiohttp application: every route in one table, behind the guards of
:mod:`relay.web.guard` (Host, origin of changes, basic auth)."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING

from aiohttp import web

from relay.queue.actions import Action
from relay.web import api, live, ops
from relay.web.context import CLOSING, RELAY, WORKERS
from relay.web.guard import guard

if TYPE_CHECKING:
    from relay.service import Relay

__all__ = ["STATIC", "create_app"]

STATIC = Path(__file__).with_name("static")
_WORKERS = 4  # threads for store calls; SQLite readers run side by side
_ACTIONS = "|".join(action.value for action in Action)  # the queue verbs of the CLI


def create_app(relay: Relay) -> web.Application:
    """The app serving ``relay``'s capture store and queue."""
    app = web.Application(middlewares=[guard()], client_max_size=1024 * 1024)
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
            web.post(f"/api/v1/queue/{{id}}/{{action:{_ACTIONS}}}", api.queue_action),
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
