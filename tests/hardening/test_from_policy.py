"""Messages Gmail would refuse for their From: (security reference E.38).

In relay mode the relay refuses them at the final dot with ``550 5.6.0`` and a text that
says what is wrong, so the tracker sees a permanent error instead of a bounce days later;
a missing From: is added from the envelope sender (Postfix's ``always_add_missing_headers``).
Capture mode keeps every message as it came: it is there to show what the tracker sent.
"""

from __future__ import annotations

import aiosmtplib
import pytest
from helpers import port_of

from relay.cleanup import CleanupOptions, Directory, run
from relay.model import Envelope

from .flow import barrier, queued

BODY = b"Subject: from policy\r\nTo: dev@example.org\r\n\r\nhello\r\n"
REFUSED = {
    "two-from": (b"From: a@example.org\r\nFrom: b@example.org\r\n", "2 From: header fields"),
    "unparsable": (b"From: alice@example.org)<evil@attacker.test>\r\n", "is not a list"),
    "no-domain": (b"From: trac\r\n", "addresses with a domain"),
    "empty": (b"From: \r\n", "addresses with a domain"),
}


async def send(port: int, message: bytes, sender: str = "trac@example.org") -> tuple[int, str]:
    """One transaction; the reply to the final dot as (code, text)."""
    async with aiosmtplib.SMTP(hostname="127.0.0.1", port=port, timeout=10) as client:
        try:
            _, text = await client.sendmail(sender, ["dev@example.org"], message)
        except aiosmtplib.SMTPDataError as exc:
            return exc.code, exc.message
    return 250, text


@pytest.mark.parametrize("head", list(REFUSED.values()), ids=list(REFUSED))
async def test_a_from_providers_refuse_is_550_at_intake_and_never_queued(relay_for, upstream, head):
    fields, why = head
    relay = await relay_for(upstream)
    status, text = await send(port_of(relay), fields + BODY)
    assert status == 550 and text.startswith("5.6.0 Message refused") and why in text, text
    assert await barrier(port_of(relay), upstream) == []
    assert queued(relay) == {}


async def test_a_missing_from_is_added_from_the_envelope_sender(relay_for, upstream):
    relay = await relay_for(upstream)
    assert (await send(port_of(relay), BODY))[0] == 250
    (received,) = await barrier(port_of(relay), upstream)
    head, _, body = received.content.partition(b"\r\n\r\n")
    assert head.split(b"\r\n") == [
        b"Subject: from policy",
        b"To: dev@example.org",
        b"From: <trac@example.org>",
    ]
    assert body == b"hello\r\n"


async def test_a_missing_from_with_a_null_sender_is_refused(relay_for, upstream):
    relay = await relay_for(upstream)
    status, text = await send(port_of(relay), BODY, sender="")
    assert status == 550 and "null sender" in text


async def test_smtp_from_repairs_what_would_be_refused(relay_for, upstream):
    relay = await relay_for(upstream, notification={"smtp_from": "trac@example.org"})
    assert (await send(port_of(relay), REFUSED["two-from"][0] + BODY))[0] == 250
    (received,) = await barrier(port_of(relay), upstream)
    assert received.content.count(b"From: ") == 1


async def test_capture_mode_keeps_such_a_message_as_it_came(make_config, start_relay):
    relay = await start_relay(make_config(web={"enabled": False}))
    message = REFUSED["two-from"][0] + BODY
    assert (await send(port_of(relay), message))[0] == 250
    (stored,) = [path.read_bytes() for path in (relay.config.capture.path / "new").iterdir()]
    assert stored == message


def test_the_check_is_pure_and_only_for_relaying():
    envelope = Envelope(sender="trac@example.org", recipients=("dev@example.org",))
    message = REFUSED["unparsable"][0] + BODY
    assert run(envelope, message, CleanupOptions(), Directory()).rejection is None
    rejection = run(envelope, message, CleanupOptions(), Directory(), relaying=True).rejection
    assert rejection is not None and rejection.reply().startswith("550 5.6.0 Message refused")
