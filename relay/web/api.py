"""Thin JSON handlers over the capture store and the queue: read parameters, call, encode.

Store calls block, so each runs in the web's own threads. Errors are JSON
(``{"error": ..., "reason": ...}``); a malformed query answers 400 with its column.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from aiohttp import web
from aiohttp.helpers import content_disposition_header

from relay.capture.message import contents, detail, link_inline_parts, part_payload
from relay.capture.meta import CaptureMeta
from relay.capture.release import ReleaseRefused, release_recipients, release_record
from relay.errors import ConfigError
from relay.gmail import QuerySyntaxError
from relay.log import fields, logger
from relay.queue.actions import Action
from relay.queue.listing import entry_of, read_entries, read_one
from relay.receive.faults import Faults, FaultsConfig
from relay.schema import build
from relay.web.context import (
    blocking,
    deps_of,
    fail,
    query_error,
    settings_of,
    store_of,
    timezone_of,
)

__all__ = [
    "delete_message",
    "delete_messages",
    "faults",
    "get_message",
    "html",
    "list_messages",
    "openapi",
    "page",
    "part",
    "queue",
    "queue_action",
    "raw",
    "recipients",
    "release",
    "set_faults",
]

_HERE = Path(__file__).parent
_PAGE_POLICY = (
    "default-src 'self'; img-src 'self' data:; frame-src 'self'; object-src 'none'; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
_MIME_TYPE = re.compile(r"[\w.+-]+/[\w.+-]+")


async def page(request: web.Request) -> web.StreamResponse:
    """The one page."""
    response = web.FileResponse(_HERE / "static" / "index.html")
    response.headers["Content-Security-Policy"] = _PAGE_POLICY
    return response


async def openapi(request: web.Request) -> web.StreamResponse:
    """The API's OpenAPI description."""
    return web.FileResponse(_HERE / "openapi.yaml", headers={"Content-Type": "application/yaml"})


async def list_messages(request: web.Request) -> web.Response:
    """``GET /api/v1/messages?q=&limit=&offset=&as=``: one page, newest first."""
    store = store_of(request)
    query = request.query.get("q", "")
    limit = _number(request, "limit", 50, 1, 500)
    offset = _number(request, "offset", 0, 0, 10**9)
    recipient = request.query.get("as") or None
    try:
        found = await blocking(
            request,
            store.search,
            query,
            limit=limit,
            offset=offset,
            recipient=recipient,
            timezone=timezone_of(request),
        )
    except QuerySyntaxError as exc:
        query_error(exc)
    return web.json_response(
        {
            "query": query,
            "as": recipient,
            "total": found.total,
            "total_exact": found.exact,
            "complete": found.complete,
            "offset": offset,
            "limit": limit,
            "messages": list(found.items),
        }
    )


async def get_message(request: web.Request) -> web.Response:
    """``GET /api/v1/messages/{id}``: everything about one message (parsed in a worker
    thread, within :mod:`relay.capture.message`'s bounds: the loop serves SMTP meanwhile)."""
    store, queue_id = store_of(request), request.match_info["id"]
    raw, meta = await _read(request, queue_id)
    item = await blocking(request, store.item, queue_id)
    body = await blocking(request, detail, item or {"id": queue_id}, raw, meta)
    spool = deps_of(request).spool
    queued = await blocking(request, read_one, spool, queue_id) if spool else None
    body["queue"] = entry_of(*queued).as_dict() if queued else None
    return web.json_response(body)


async def raw(request: web.Request) -> web.Response:
    """``GET /api/v1/messages/{id}/raw``: the exact bytes, as the client sent them."""
    queue_id = request.match_info["id"]
    message, _ = await _read(request, queue_id)
    original = await blocking(request, store_of(request).original, queue_id)
    disposition = content_disposition_header("inline", filename=f"{queue_id}.eml")
    return web.Response(
        body=original if original is not None else message,
        content_type="message/rfc822",
        headers={"Content-Disposition": disposition},
    )


async def html(request: web.Request) -> web.Response:
    """``GET /api/v1/messages/{id}/html``: the HTML body, safe to show in a sandboxed frame.

    Its policy forbids scripts, forms and every remote load (only this message's own inline
    parts and ``data:`` images show); links would open a new window, which the sandbox
    refuses.
    """
    queue_id = request.match_info["id"]
    message, _ = await _read(request, queue_id)
    body = await blocking(request, _linked_html, message)
    if body is None:
        fail(404, "the message has no HTML body")
    parts = f"{request.scheme}://{request.host}/api/v1/messages/{queue_id}/parts/"
    policy = (
        f"default-src 'none'; img-src data: {parts}; style-src 'unsafe-inline'; font-src data:; "
        "base-uri 'none'; form-action 'none'; frame-ancestors 'self'; sandbox"
    )
    return web.Response(
        text='<!doctype html><meta charset="utf-8"><base target="_blank">' + body,
        content_type="text/html",
        headers={"Content-Security-Policy": policy},
    )


async def part(request: web.Request) -> web.Response:
    """``GET /api/v1/messages/{id}/parts/{n}``: one MIME part, decoded, as a download."""
    queue_id, number = request.match_info["id"], int(request.match_info["n"])
    message, _ = await _read(request, queue_id)
    found = await blocking(request, part_payload, message, number)
    if found is None:
        fail(404, f"the message has no part {number}")
    info, payload = found
    kind = info.content_type if _MIME_TYPE.fullmatch(info.content_type) else ""
    disposition = content_disposition_header(
        "attachment", filename=info.filename or f"part-{number}"
    )
    return web.Response(
        body=payload,
        content_type=kind or "application/octet-stream",
        headers={
            "Content-Disposition": disposition,
            "Content-Security-Policy": "default-src 'none'; sandbox",
        },
    )


async def release(request: web.Request) -> web.Response:
    """``POST /api/v1/messages/{id}/release``: send it upstream (body: ``{"to": [...]}``)."""
    store, queue_id = store_of(request), request.match_info["id"]
    wanted = await _json_body(request)
    message, meta = await _read(request, queue_id)
    recipients = wanted.get("to") or list(meta.recipients if meta is not None else ())
    if not isinstance(recipients, list) or not all(isinstance(r, str) for r in recipients):
        fail(400, 'expected {"to": ["address", ...]}')
    try:
        recipients = release_recipients(recipients, settings_of(request).release_allowed)
    except ReleaseRefused as exc:
        fail(400 if exc.bad_address else 403, str(exc), recipients=recipients)
    releaser = deps_of(request).releaser
    if releaser is None or releaser.upstream is None:
        fail(409, "no upstream to release to: configure capture.release.upstream")
    attempts = await releaser.release(release_record(queue_id, message, meta), recipients)
    await blocking(request, store.record_release, queue_id, attempts)
    released = all(attempt["status"] == "sent" for attempt in attempts)
    return web.json_response(
        {"released": released, "attempts": attempts}, status=200 if released else 502
    )


async def delete_message(request: web.Request) -> web.Response:
    """``DELETE /api/v1/messages/{id}``."""
    queue_id = request.match_info["id"]
    deleted = await blocking(request, store_of(request).delete, [queue_id])
    if not deleted:
        fail(404, f"no message {queue_id}")
    return web.json_response({"deleted": deleted})


async def delete_messages(request: web.Request) -> web.Response:
    """``DELETE /api/v1/messages?q=&as=``: every message, or those matching ``q``."""
    store = store_of(request)
    try:
        ids = await blocking(
            request,
            store.matching,
            request.query.get("q", ""),
            recipient=request.query.get("as") or None,
            timezone=timezone_of(request),
        )
    except QuerySyntaxError as exc:
        query_error(exc)
    deleted = await blocking(request, store.delete, ids)
    return web.json_response({"deleted": deleted})


async def recipients(request: web.Request) -> web.Response:
    """``GET /api/v1/recipients``: who got mail, most first (for "view as recipient")."""
    found = await blocking(request, store_of(request).recipients)
    return web.json_response(
        {"recipients": [{"address": address, "messages": count} for address, count in found]}
    )


async def queue(request: web.Request) -> web.Response:
    """``GET /api/v1/queue``: queued, deferred, held and failed messages (relay mode)."""
    spool = deps_of(request).spool
    if spool is None:
        return web.json_response({"enabled": False, "messages": []})
    entries = await blocking(request, read_entries, spool)
    return web.json_response({"enabled": True, "messages": [e.as_dict() for e in entries]})


async def queue_action(request: web.Request) -> web.Response:
    """``POST /api/v1/queue/{id}/{action}``: retry, hold, release, delete or requeue one
    message, as ``notify-relay queue`` does (never while it is being delivered)."""
    apply = deps_of(request).queue_actions
    if apply is None:
        fail(404, "capture mode: there is no delivery queue")
    action = Action(request.match_info["action"])
    report = await apply(action, [request.match_info["id"]])
    if report.refused:
        fail(409, report.refused[0], **report.as_dict())
    return web.json_response(report.as_dict())


async def faults(request: web.Request) -> web.Response:
    """``GET /api/v1/faults``: the fault-injection rules in force and how often each fired."""
    return web.json_response(_faults_of(request).as_dict())


async def set_faults(request: web.Request) -> web.Response:
    """``PUT /api/v1/faults`` (body: ``{"rules": [...], "seed": n}``) replaces the rules;
    ``DELETE`` turns fault injection off."""
    found = _faults_of(request)
    body = await _json_body(request) if request.method == "PUT" else {}
    try:
        config = build(FaultsConfig, body, file="request body")
    except ConfigError as exc:
        fail(400, str(exc), key=exc.key)
    found.configure(config)
    logger.warning(
        "faults: %d fault injection rules in force (set through the API)",
        len(config.rules),
        extra=fields(rules=len(config.rules)),
    )
    return web.json_response(found.as_dict())


def _faults_of(request: web.Request) -> Faults:
    found = deps_of(request).faults
    if found is None:
        fail(404, "fault injection is for capture mode (no upstream)")
    return found


def _linked_html(message: bytes) -> str | None:
    """The HTML body with its ``cid:`` images pointing at the parts (None: there is none)."""
    parsed = contents(message)
    if parsed.html is None:
        return None
    return link_inline_parts(parsed.html, parsed.parts, lambda number: f"parts/{number}")


async def _read(request: web.Request, queue_id: str) -> tuple[bytes, CaptureMeta | None]:
    found = await blocking(request, store_of(request).read, queue_id)
    if found is None:
        fail(404, f"no message {queue_id}")
    return found


async def _json_body(request: web.Request) -> dict[str, Any]:
    if not request.can_read_body:
        return {}
    try:
        body = await request.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        fail(400, 'expected a JSON object such as {"to": ["address", ...]}')
    return body


def _number(request: web.Request, name: str, default: int, low: int, high: int) -> int:
    text = request.query.get(name)
    if text is None:
        return default
    if not text.isdigit() or not low <= int(text) <= high:
        fail(400, f"{name} must be a whole number from {low} to {high}", parameter=name)
    return int(text)
