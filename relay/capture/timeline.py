"""The delivery timeline of a captured message and the status it adds up to (pure).

Read from the metadata the store keeps (:class:`~relay.capture.meta.CaptureMeta`; None when
a message has none): ``received_at`` and ``captured_at``, the relay's delivery attempts
(``timeline``, relay mode) and manual releases (``releases``).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from typing import Any

from relay.capture.meta import CaptureMeta

__all__ = ["DeliveryStatus", "delivery_status", "timeline"]


class DeliveryStatus(enum.Enum):
    """What became of a captured message, as the list shows it."""

    CAPTURED = "captured"  # capture mode: kept, never sent
    SENT = "sent"  # every recipient accepted upstream
    DEFERRED = "deferred"  # some recipient still waits for a retry
    BOUNCED = "bounced"  # some recipient was refused for good
    RELEASED = "released"  # sent to the upstream by hand (API or CLI)


def delivery_status(meta: CaptureMeta) -> DeliveryStatus:
    """The status of the message described by ``meta``; the last word per recipient counts."""
    if any(release.get("status") == "sent" for release in meta.releases):
        return DeliveryStatus.RELEASED
    last: dict[str, str] = {}
    for attempt in meta.timeline:
        for rcpt in attempt.get("recipients", ()):
            last[rcpt] = attempt.get("status", "")
    if not last:
        return DeliveryStatus.CAPTURED
    for status in (DeliveryStatus.DEFERRED, DeliveryStatus.BOUNCED):
        if status.value in last.values():
            return status
    return DeliveryStatus.SENT


def timeline(meta: CaptureMeta | None) -> list[dict[str, Any]]:
    """Every event of the message in time order: ``at`` (epoch seconds), ``event`` and details.

    Events: ``received`` (from which client), ``queued`` (relay mode), one per delivery
    attempt and recipient group (``sent``/``deferred``/``bounced`` with the upstream's reply),
    ``captured``, and ``released`` or ``release failed`` for manual releases.
    """
    if meta is None:
        return []
    received = meta.received_at
    client = " ".join(part for part in (meta.peer, meta.helo) if part)
    events: list[dict[str, Any]] = [{"at": received, "event": "received", "detail": client}]
    if meta.timeline:
        events.append({"at": received, "event": "queued", "detail": ""})
    for attempt in meta.timeline:
        events.append({**_attempt(attempt), "event": attempt.get("status", "attempt")})
    events.append({"at": meta.captured_at, "event": "captured", "detail": ""})
    for release in meta.releases:
        name = "released" if release.get("status") == "sent" else "release failed"
        events.append({**_attempt(release), "event": name})
    return sorted(events, key=lambda event: event["at"])


def _attempt(attempt: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "at": attempt.get("at", 0.0),
        "relay": attempt.get("relay", ""),
        "recipients": list(attempt.get("recipients", ())),
        "detail": attempt.get("reply", ""),
    }
