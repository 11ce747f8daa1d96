"""Release a captured message to an upstream by hand, and only to allowed recipients.

The guard is pure; sending opens one session with :class:`~relay.deliver.smtp.UpstreamSession`
and returns the attempts in the shape the delivery timeline uses. The bytes go out as they
were captured.
"""

from __future__ import annotations

import fnmatch
import time
from collections.abc import Sequence

from relay.cleanup.encoding import downgrade_8bit
from relay.config import UpstreamConfig
from relay.deliver.dkim import SigningKey, sign
from relay.deliver.oauth import token_source
from relay.deliver.outcome import Reply, classify
from relay.deliver.smtp import UpstreamSession
from relay.errors import UpstreamError
from relay.queue.record import Attempt

__all__ = ["release_refusal", "send_release"]


def release_refusal(recipients: Sequence[str], allowed: Sequence[str]) -> str | None:
    """Why releasing to ``recipients`` is refused, or None when every one of them is allowed.

    ``allowed`` holds shell-style patterns (``*@example.org``), compared case-insensitively.
    """
    if not allowed:
        return "release is off: configure capture.release.allowed (recipient patterns)"
    if not recipients:
        return "no recipients to release to"
    refused = [
        rcpt
        for rcpt in recipients
        if not any(fnmatch.fnmatchcase(rcpt.lower(), pattern.lower()) for pattern in allowed)
    ]
    if refused:
        return (
            f"not allowed by capture.release.allowed ({', '.join(allowed)}): {', '.join(refused)}"
        )
    return None


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
