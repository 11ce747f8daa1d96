"""Frozen value types shared by the stages: the envelope and the rewrite trace."""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass, field

__all__ = ["Envelope", "Refusal", "TraceEntry", "new_queue_id"]


def new_queue_id() -> str:
    """Return a new queue id: 13 hex digits of microseconds since the epoch, 5 random.

    Ids sort by arrival time, are safe as file names, and are unique across processes.
    """
    return f"{time.time_ns() // 1000:013X}{secrets.token_hex(3).upper()[:5]}"


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


@dataclass(frozen=True, slots=True)
class Refusal:
    """What relay mode would have answered at ``stage`` (``RCPT`` or ``DATA``): capture mode
    keeps the message and records this instead of refusing it."""

    stage: str
    reply: str

    def as_dict(self) -> dict[str, str]:
        """The refusal as JSON-able data (the capture metadata and the API)."""
        return {"stage": self.stage, "reply": self.reply}
