"""Release a captured message to an upstream by hand, and only to allowed recipients.

The guard is pure: :func:`release_recipients` reads each recipient as one plain address,
exactly the text ``RCPT TO`` will carry (aiosmtplib re-parses what it is given, so anything
a parser could read as another address is refused), then checks it against
``capture.release.allowed``. Sending goes through delivery
(:class:`relay.deliver.release.Releaser`), which takes the message as
:func:`release_record` builds it from the capture store.
"""

from __future__ import annotations

import fnmatch
import time
from collections.abc import Sequence

from relay.capture.meta import CaptureMeta
from relay.cleanup.mailbox import is_address
from relay.model import Envelope
from relay.record import Record

__all__ = ["ReleaseRefused", "release_address", "release_recipients", "release_record"]

_PLAIN = "release takes plain addresses only (local@domain)"
#: Text a strict address may hold that still means something else to someone: a quoted
#: local part, an address literal, an RFC 2047 encoded word, %- and !-routing.
_NOT_PLAIN = (
    ('"', "no quoted local part"),
    ("[", "no address literal"),
    ("=?", "no encoded word"),
    ("%", "no %-routing"),
    ("!", "no !-routing"),
)


class ReleaseRefused(ValueError):
    """A release that must not go out; ``bad_address`` when a recipient is not a plain address."""

    def __init__(self, reason: str, *, bad_address: bool = False) -> None:
        super().__init__(reason)
        self.bad_address = bad_address


def release_address(text: str) -> str:
    """``text`` when it is one plain address, the very string ``RCPT TO`` will carry.

    Plain: ``local@domain`` as :func:`relay.cleanup.mailbox.is_address` reads it (no display
    name, comment, angle brackets, list, route, whitespace or trailing dot), an ASCII domain,
    and none of :data:`_NOT_PLAIN`. Raise :class:`ReleaseRefused` saying why not.
    """
    if not isinstance(text, str) or not is_address(text):
        why = "no name, comment, angle brackets, list, route, space or trailing dot"
        raise ReleaseRefused(f"{_PLAIN}, {why}: {text!r}", bad_address=True)
    for needle, why in _NOT_PLAIN:
        if needle in text:
            raise ReleaseRefused(f"{_PLAIN}, {why}: {text!r}", bad_address=True)
    if not text.rpartition("@")[2].isascii():
        why = "write a non-ASCII domain in its ASCII form (xn--...)"
        raise ReleaseRefused(f"{_PLAIN}, {why}: {text!r}", bad_address=True)
    return text


def release_recipients(recipients: Sequence[str], allowed: Sequence[str]) -> tuple[str, ...]:
    """The addresses to release to, each checked by :func:`release_address` and allowed.

    ``allowed`` holds shell-style patterns (``*@example.org``), compared case-insensitively
    with the checked address. Raise :class:`ReleaseRefused` for the first reason not to.
    """
    if not allowed:
        raise ReleaseRefused(
            "release is off: configure capture.release.allowed (recipient patterns)"
        )
    if not recipients:
        raise ReleaseRefused("no recipients to release to")
    addresses = tuple(release_address(rcpt) for rcpt in recipients)
    refused = [
        address
        for address in addresses
        if not any(fnmatch.fnmatchcase(address.lower(), pattern.lower()) for pattern in allowed)
    ]
    if refused:
        raise ReleaseRefused(
            f"not allowed by capture.release.allowed ({', '.join(allowed)}): {', '.join(refused)}"
        )
    return addresses


def release_record(queue_id: str, message: bytes, meta: CaptureMeta | None) -> Record:
    """The captured message ``queue_id`` as delivery takes it, from its stored metadata
    (none: a null sender, no recipients, received now)."""
    known = meta or CaptureMeta.blank(queue_id)
    envelope = Envelope(
        sender=known.sender,
        recipients=known.recipients,
        mail_options=known.mail_options,
        received_at=known.received_at or time.time(),
    )
    return Record(queue_id=queue_id, envelope=envelope, message=message)
