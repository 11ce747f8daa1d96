"""Operations endpoints: ``/metrics`` for Prometheus, ``/livez`` and ``/readyz`` for orchestrators.

The web app includes :func:`routes` in its route table. ``/livez`` answers 200 while the
event loop runs; ``/readyz`` answers 200 or 503 with the checks of
:func:`relay.health.readiness` as JSON.
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

from aiohttp import web

from relay.health import UPSTREAM_GRACE, Readiness, readiness
from relay.metrics import CONTENT_TYPE

if TYPE_CHECKING:
    from relay.service import Relay

__all__ = ["routes", "storage_problem"]


#: Room beyond the message itself: its queue record or metadata file and index rows.
_OVERHEAD = 64 * 1024


def storage_problem(root: Path, largest: int) -> str | None:
    """Why ``root`` cannot take a message of ``largest`` octets: a file cannot be written
    under ``root/tmp`` (the spool and the Maildir have one), or the space left is too small
    (a full disk still lets an empty file be made)."""
    try:
        with tempfile.NamedTemporaryFile(dir=root / "tmp", prefix=".readyz-"):
            free = shutil.disk_usage(root).free
    except OSError as exc:
        return f"cannot write to {root}: {exc.strerror or exc}"
    if free < largest + _OVERHEAD:
        return (
            f"{root} has {free // 1024} KiB free; a message of the largest size accepted "
            f"needs {(largest + _OVERHEAD) // 1024} KiB (limits.max_message_size: "
            f"{largest // 1024} KiB)"
        )
    return None


def _judge(relay: Relay, grace: float) -> Readiness:
    manager = relay.manager
    root = manager.spool.root if manager is not None else relay.capture.root  # type: ignore[union-attr]
    return readiness(
        listening=tuple(relay.bound),
        storage=str(root),
        storage_problem=storage_problem(root, relay.config.limits.max_message_size),
        failing_since=manager.failing_since if manager is not None else None,
        now=time.time(),
        grace=grace,
    )


def routes(relay: Relay, *, upstream_grace: float = UPSTREAM_GRACE) -> list[web.RouteDef]:
    """``GET /metrics``, ``/livez`` and ``/readyz`` for ``relay``."""

    async def metrics(request: web.Request) -> web.Response:
        return web.Response(body=relay.metrics.exposition(), headers={"Content-Type": CONTENT_TYPE})

    async def livez(request: web.Request) -> web.Response:
        return web.Response(text="ok\n")

    async def readyz(request: web.Request) -> web.Response:
        verdict = await asyncio.to_thread(_judge, relay, upstream_grace)
        return web.json_response(verdict.as_dict(), status=200 if verdict.ready else 503)

    return [web.get("/metrics", metrics), web.get("/livez", livez), web.get("/readyz", readyz)]
