"""What cleanup hands back: the rewritten message, its trace, or a rejection with its reply."""

from __future__ import annotations

from dataclasses import dataclass

from relay.model import Envelope, TraceEntry

__all__ = ["CleanupResult", "Rejection"]


@dataclass(frozen=True, slots=True)
class Rejection:
    """A refusal with its SMTP reply: ``Rejection(550, "5.1.3", "...")``."""

    code: int
    enhanced: str
    text: str

    def reply(self) -> str:
        """The SMTP reply line, without CRLF."""
        return f"{self.code} {self.enhanced} {self.text}"


@dataclass(frozen=True, slots=True)
class CleanupResult:
    """What cleanup made of a message; ``rejection`` set means it must not be queued.

    ``unreadable`` says why cleanup could not take the message (or its MIME body) apart
    and passed it (or the body) on as it came; the caller logs it. None: it could.
    """

    envelope: Envelope
    message: bytes
    trace: tuple[TraceEntry, ...] = ()
    rejection: Rejection | None = None
    unreadable: str | None = None
