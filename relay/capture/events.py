"""In-process notices about captured mail (new, deleted, released) for whoever listens.

The store publishes from any thread; subscribers (the web page's event stream, the
``wait`` API) read an asyncio queue on the event loop. The capture side never knows who
listens: dependencies point from web to capture, not back.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

__all__ = ["Events", "MailEvent", "MailEventKind"]

_BACKLOG = 1000


class MailEventKind(enum.Enum):
    """What happened to the messages of an event."""

    NEW = "new"
    DELETED = "deleted"
    CHANGED = "changed"  # released, or its status changed otherwise
    RESET = "reset"  # too much happened (a slow listener, a reindex): reload everything


@dataclass(frozen=True, slots=True)
class MailEvent:
    """One notice: its kind and the queue ids it is about."""

    kind: MailEventKind
    ids: tuple[str, ...] = ()


class Events:
    """A fan-out of :class:`MailEvent` to every current subscriber."""

    def __init__(self) -> None:
        self._queues: set[asyncio.Queue[MailEvent]] = set()
        self._loop: asyncio.AbstractEventLoop | None = None

    @contextmanager
    def subscribe(self) -> Iterator[asyncio.Queue[MailEvent]]:
        """Receive every event published while the block runs (call on the event loop).

        A subscriber that falls more than a thousand events behind gets a ``RESET`` instead.
        """
        self._loop = asyncio.get_running_loop()
        queue: asyncio.Queue[MailEvent] = asyncio.Queue(_BACKLOG)
        self._queues.add(queue)
        try:
            yield queue
        finally:
            self._queues.discard(queue)

    def publish(self, event: MailEvent) -> None:
        """Hand ``event`` to every subscriber; safe from any thread, a no-op without them."""
        loop = self._loop
        if loop is None or not self._queues:
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            self._deliver(event)
        else:
            with contextlib.suppress(RuntimeError):  # a closed loop: nobody listens any more
                loop.call_soon_threadsafe(self._deliver, event)

    def _deliver(self, event: MailEvent) -> None:
        for queue in list(self._queues):
            try:
                queue.put_nowait(event)
            except asyncio.QueueFull:
                while not queue.empty():
                    queue.get_nowait()
                queue.put_nowait(MailEvent(MailEventKind.RESET))
