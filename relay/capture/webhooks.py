"""Webhooks: POST a JSON summary of each captured (or deleted) message to configured URLs.

They listen to the store's events (:mod:`relay.capture.events`), so SMTP never waits for
them: each webhook has a bounded queue and one sender that tries each post up to
``attempts`` times with doubling back-off. The body is the API's list item::

    {"event": "new", "message": {"id": ..., "subject": ..., "from": ..., ...}}
    {"event": "deleted", "id": "..."}

With a secret, ``X-Notify-Relay-Signature: sha256=<hex>`` is the HMAC-SHA256 of the body.
Failures are logged with the URL stripped of credentials and query; the secret never is.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import logging
import uuid
from collections.abc import Sequence
from typing import Any

import aiohttp

from relay.capture.events import MailEvent, MailEventKind
from relay.capture.maildir import CaptureStore
from relay.capture.options import WebhookConfig
from relay.log import fields, logger
from relay.secret import Secret

__all__ = ["SIGNATURE_HEADER", "Webhooks", "sign"]

SIGNATURE_HEADER = "X-Notify-Relay-Signature"
_BACKLOG = 1000


def sign(secret: str, body: bytes) -> str:
    """The signature header's value for ``body``: ``sha256=`` and the hex HMAC-SHA256."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


class _Hook:
    """One webhook: its queue of bodies and the task that posts them."""

    def __init__(self, config: WebhookConfig, secret: Secret | None) -> None:
        self.config = config
        self.secret = secret
        self.queue: asyncio.Queue[tuple[str, bytes]] = asyncio.Queue(_BACKLOG)

    def add(self, event: str, body: dict[str, Any]) -> None:
        try:
            self.queue.put_nowait((event, json.dumps(body).encode()))
        except asyncio.QueueFull:
            logger.warning(
                "webhook %s: %d posts waiting; a %s event is dropped",
                self.config.shown_url,
                _BACKLOG,
                event,
                extra=fields(webhook=self.config.shown_url, limit=_BACKLOG, event=event),
            )


class Webhooks:
    """The configured webhooks of ``store``; start and stop them on the event loop.

    ``backoff``: seconds before the second try of a post (doubling, at most ``max_backoff``).
    ``timezone``: the zone of dates in the webhooks' queries; ``secrets``: each hook's signing
    secret, in order (:class:`~relay.credentials.Credentials`; None: unsigned).
    """

    def __init__(
        self,
        hooks: Sequence[WebhookConfig],
        store: CaptureStore,
        *,
        timezone: str,
        secrets: Sequence[Secret | None] | None = None,
        backoff: float = 1.0,
        max_backoff: float = 60.0,
    ) -> None:
        signing = secrets if secrets is not None else [None] * len(hooks)
        self.hooks = [_Hook(config, secret) for config, secret in zip(hooks, signing, strict=True)]
        self.store = store
        self.timezone = timezone
        self.backoff = backoff
        self.max_backoff = max_backoff
        self._tasks: list[asyncio.Task[None]] = []
        self._session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        """Subscribe to the store's events and start one sender per webhook."""
        self._session = aiohttp.ClientSession()
        listening = asyncio.Event()
        self._tasks = [
            asyncio.create_task(self._listen(listening)),
            *(asyncio.create_task(self._send(hook)) for hook in self.hooks),
        ]
        await listening.wait()

    async def stop(self) -> None:
        """Stop listening and sending (posts not yet made are given up)."""
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def _listen(self, listening: asyncio.Event) -> None:
        with self.store.events.subscribe() as events:
            listening.set()
            while True:
                event = await events.get()
                try:
                    await self._route(event)
                except Exception:  # noqa: BLE001 - one bad event must not end the webhooks
                    logger.exception(
                        "webhooks: cannot prepare the posts of %s",
                        event,
                        extra=fields(event=event.kind.value),
                    )

    async def _route(self, event: MailEvent) -> None:
        """Queue the posts ``event`` calls for, per webhook."""
        if event.kind is MailEventKind.RESET:
            logger.warning("webhooks: the store changed too much at once; events were missed")
            return
        kind = event.kind.value
        for hook in self.hooks:
            if kind not in hook.config.events:
                continue
            if event.kind is MailEventKind.DELETED:
                for queue_id in event.ids:
                    hook.add(kind, {"event": kind, "id": queue_id})
                continue
            for item in await asyncio.to_thread(self._items, hook.config.query, event.ids):
                hook.add(kind, {"event": kind, "message": item})

    def _items(self, query: str | None, ids: tuple[str, ...]) -> list[dict[str, Any]]:
        """The list items of ``ids`` matching ``query`` (the API's search), oldest first."""
        found = self.store.search(
            query or "", limit=max(len(ids), 1), among=list(ids), timezone=self.timezone
        )
        return list(reversed(found.items))

    async def _send(self, hook: _Hook) -> None:
        while True:
            event, body = await hook.queue.get()
            await self._post(hook, event, body)

    async def _post(self, hook: _Hook, event: str, body: bytes) -> bool:
        """Post ``body`` until it is taken (2xx) or ``attempts`` tries failed."""
        assert self._session is not None
        config = hook.config
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "notify-relay",
            "X-Notify-Relay-Event": event,
            "X-Notify-Relay-Delivery": uuid.uuid4().hex,
        }
        if hook.secret is not None:
            headers[SIGNATURE_HEADER] = sign(hook.secret.reveal(), body)
        timeout = aiohttp.ClientTimeout(total=config.timeout)
        for attempt in range(1, config.attempts + 1):
            try:
                async with self._session.post(
                    config.url, data=body, headers=headers, timeout=timeout, allow_redirects=False
                ) as response:
                    if 200 <= response.status < 300:
                        return True
                    problem = f"answered {response.status}"
            except (aiohttp.ClientError, TimeoutError) as exc:
                problem = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
                problem = problem.replace(config.url, config.shown_url)
            last = attempt == config.attempts
            logger.log(
                logging.ERROR if last else logging.WARNING,
                "webhook %s: %s post %s (try %d of %d)%s",
                config.shown_url,
                event,
                problem,
                attempt,
                config.attempts,
                "; given up" if last else "",
                extra=fields(
                    webhook=config.shown_url,
                    event=event,
                    reason=problem,
                    attempts=attempt,
                    limit=config.attempts,
                ),
            )
            if not last:
                await asyncio.sleep(min(self.backoff * 2 ** (attempt - 1), self.max_backoff))
        return False
