"""The cleanup stage: pure functions over (envelope, message) -> (envelope, message, trace).

PROVISIONAL STUB written by the lead so the relay core runs; the cleanup engineer replaces
this module with the real stage (same public names and signatures).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Mapping

from relay.cleanup.options import CleanupOptions
from relay.model import Envelope, TraceEntry

__all__ = ["CleanupOptions", "CleanupResult", "Directory", "Rejection", "check_recipient", "run"]


@dataclass(frozen=True, slots=True)
class Rejection:
    """A refusal with its SMTP reply: ``Rejection(550, "5.1.3", "...")``."""

    code: int
    enhanced: str
    text: str

    def reply(self) -> str:
        """The SMTP reply line."""
        return f"{self.code} {self.enhanced} {self.text}"


@dataclass(frozen=True, slots=True)
class Directory:
    """Recipient expansion data: aliases (name -> addresses) and users (name -> address)."""

    aliases: Mapping[str, tuple[str, ...]] = field(default_factory=lambda: MappingProxyType({}))
    users: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))


@dataclass(frozen=True, slots=True)
class CleanupResult:
    """What cleanup made of a message; ``rejection`` set means it must not be queued."""

    envelope: Envelope
    message: bytes
    trace: tuple[TraceEntry, ...] = ()
    rejection: Rejection | None = None


def check_recipient(address: str, options: CleanupOptions, directory: Directory) -> Rejection | None:
    """Decide at RCPT time whether ``address`` can ever be delivered."""
    if "@" in address or options.use_short_addr or options.smtp_default_domain:
        return None
    if address in directory.aliases or address in directory.users:
        return None
    return Rejection(
        550,
        "5.1.3",
        f"<{address}> is not an address: set notification.smtp_default_domain "
        "or notification.use_short_addr",
    )


_BCC = re.compile(rb"^Bcc:.*?\r\n(?![ \t])", re.IGNORECASE | re.MULTILINE | re.DOTALL)


def run(
    envelope: Envelope,
    message: bytes,
    options: CleanupOptions,
    directory: Directory,
    *,
    account: str | None = None,
) -> CleanupResult:
    """Apply every cleanup step to one message and return the result."""
    del options, directory, account
    head, sep, body = message.partition(b"\r\n\r\n")
    stripped = _BCC.sub(b"", head + b"\r\n")[:-2]
    trace = (TraceEntry("bcc", "removed Bcc header"),) if stripped != head else ()
    return CleanupResult(envelope, stripped + sep + body, trace)
