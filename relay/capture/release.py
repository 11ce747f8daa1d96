"""Release a captured message to an upstream by hand, and only to allowed recipients.

The guard is pure: :func:`release_recipients` reads each recipient as one plain address,
exactly the text ``RCPT TO`` will carry (aiosmtplib re-parses what it is given, so anything
a parser could read as another address is refused), then checks it against
``capture.release.allowed``. Sending opens one session with
:class:`~relay.deliver.smtp.UpstreamSession` and returns the attempts in the shape the
delivery timeline uses. The bytes go out as they were captured.
"""

from __future__ import annotations

import fnmatch
import time
from collections.abc import Sequence

from relay.cleanup.encoding import downgrade_8bit
from relay.cleanup.mailbox import is_address
from relay.config import UpstreamConfig
from relay.deliver.dkim import SigningKey, sign
from relay.deliver.oauth import token_source
from relay.deliver.outcome import Reply, classify
from relay.deliver.smtp import UpstreamSession
from relay.errors import UpstreamError
from relay.queue.record import Attempt

__all__ = ["ReleaseRefused", "release_address", "release_recipients", "send_release"]

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


async def send_release(
    message: bytes,
    sender: str,
    recipients: Sequence[str],
    upstream: UpstreamConfig,
    *,
    hostname: str,
    dkim: Sequence[SigningKey] = (),
) -> list[dict[str, object]]:
    """Send ``message`` to ``recipients`` over a new session; one attempt per distinct reply.

    ``recipients`` come from :func:`release_recipients`, so what was checked is what is sent.

    An OAuth upstream gets a fresh token; an ``mx`` upstream cannot be released to. The
    ``dkim`` keys sign what goes out (after any 7-bit downgrade), replacing their own
    signatures made at capture time.
    """
    if upstream.mx:
        reply = Reply(0, "cannot release by MX lookup: configure capture.release.upstream")
        return _attempts(str(upstream), dict.fromkeys(recipients, reply))
    oauth = upstream.oauth if upstream.auth != "password" else None
    tokens = token_source(oauth) if oauth is not None else None
    session = UpstreamSession(upstream, hostname=hostname, tokens=tokens)
    try:
        await session.open()
    except UpstreamError as exc:
        return _attempts(session.relay, dict.fromkeys(recipients, Reply(exc.code, exc.text)))
    try:
        options = []
        if not message.isascii():
            if session.supports_8bitmime:
                options.append("BODY=8BITMIME")
            else:
                message = downgrade_8bit(message)
        message = sign(message, dkim).message
        replies = await session.send(sender, recipients, message, mail_options=options)
    finally:
        await session.close()
    return _attempts(session.relay, replies)


def _attempts(relay: str, replies: dict[str, Reply]) -> list[dict[str, object]]:
    now = time.time()
    groups: dict[Reply, list[str]] = {}
    for rcpt, reply in replies.items():
        groups.setdefault(reply, []).append(rcpt)
    return [
        Attempt(
            at=now,
            relay=relay,
            recipients=tuple(rcpts),
            status=classify(reply).value,
            reply=str(reply),
        ).as_dict()
        for reply, rcpts in groups.items()
    ]
