"""Frozen value types shared by the stages: the envelope, the rewrite trace, a delivery status."""

from __future__ import annotations

import enum
import secrets
import time
from collections.abc import Iterable
from dataclasses import dataclass, field

__all__ = [
    "AmbiguousId",
    "Envelope",
    "Refusal",
    "Status",
    "TraceEntry",
    "new_queue_id",
    "resolve_id",
]


def new_queue_id() -> str:
    """Return a new queue id: 13 hex digits of microseconds since the epoch, 5 random.

    Ids sort by arrival time, are safe as file names, and are unique across processes.
    """
    return f"{time.time_ns() // 1000:013X}{secrets.token_hex(3).upper()[:5]}"


class AmbiguousId(LookupError):
    """An abbreviated id that several ids start with; ``candidates`` lists them."""

    def __init__(self, prefix: str, candidates: Iterable[str]) -> None:
        self.prefix, self.candidates = prefix, tuple(candidates)
        names = ", ".join(self.candidates[:-1]) + " or " + self.candidates[-1]
        super().__init__(f"{prefix}: ambiguous id prefix; it could be {names}")


def resolve_id(prefix: str, known: Iterable[str]) -> str | None:
    """The id in ``known`` that is ``prefix``, else the only one that starts with it.

    None when no id matches; raises :class:`AmbiguousId` when several start with it. Queue
    and capture commands share it, so an abbreviated id means the same everywhere.
    """
    found = sorted({queue_id for queue_id in known if prefix and queue_id.startswith(prefix)})
    if prefix in found:
        return prefix
    if len(found) > 1:
        raise AmbiguousId(prefix, found)
    return found[0] if found else None


@dataclass(frozen=True, slots=True, kw_only=True)
class Envelope:
    """The SMTP envelope of one message.

    ``sender`` is ``""`` for the null sender (``MAIL FROM:<>``). ``mail_options`` are the
    ESMTP parameters of MAIL FROM as received (``BODY=8BITMIME``, ``SMTPUTF8`` ...).
    """

    sender: str
    recipients: tuple[str, ...]
    mail_options: tuple[str, ...] = ()
    received_at: float = field(default_factory=time.time)
    peer: str = ""
    helo: str = ""


@dataclass(frozen=True, slots=True)
class TraceEntry:
    """One change made by cleanup: which option made it and what it changed."""

    option: str
    change: str


class Status(enum.Enum):
    """The delivery status of a recipient, named as in Postfix's log lines."""

    SENT = "sent"
    DEFERRED = "deferred"
    BOUNCED = "bounced"


@dataclass(frozen=True, slots=True)
class Refusal:
    """What relay mode would have answered at ``stage`` (``RCPT`` or ``DATA``): capture mode
    keeps the message and records this instead of refusing it."""

    stage: str
    reply: str

    def as_dict(self) -> dict[str, str]:
        """The refusal as JSON-able data (the capture metadata and the API)."""
        return {"stage": self.stage, "reply": self.reply}
