"""Header blocks that cleanup cannot fully read, and entities that say two things at once
(hardening issue items 5 and 8).

A Bcc never leaves the relay, whatever else the header block holds: as in Postfix, a line
that is not a header field ends the header section (an empty line is put before it, so
every later reader agrees where the body starts). A MIME entity with two Content-Type or
Content-Transfer-Encoding fields is read by its first one, as the stdlib and mail readers
do, so re-encoding never changes the text a reader shows.
"""

from __future__ import annotations

import email
from email import policy
from email.message import Message

import pytest
from helpers import port_of

from relay.cleanup import CleanupOptions, Directory, run
from relay.model import Envelope

from .flow import barrier, submit

ENVELOPE = Envelope(sender="trac@example.org", recipients=("dev@example.org",))
HIDDEN = "hidden@example.org"


def reader(data: bytes) -> Message:
    """The message as a mail reader built on the stdlib shows it."""
    return email.message_from_bytes(data, policy=policy.default)


# --- item 5: Bcc and a header line cleanup cannot parse -----------------------------------

UNPARSABLE = {
    "garbage-line": b"this line is not a header field",
    "8bit-field-name": "X-Jörg: ein Feld".encode(),
    "no-colon-8bit": b"\xff\xfe\x00garbage",
}


def with_bcc_before(line: bytes) -> bytes:
    return (
        b"From: trac@example.org\r\nTo: dev@example.org\r\nBcc: " + HIDDEN.encode() + b"\r\n"
        b"Subject: ticket #1\r\n" + line + b"\r\nX-After: 1\r\n\r\nthe body\r\n"
    )


@pytest.mark.parametrize("line", UNPARSABLE.values(), ids=UNPARSABLE)
@pytest.mark.parametrize("mode", ["keep", "auto"])
def test_bcc_is_removed_when_a_later_header_line_cannot_be_parsed(line, mode):
    data = with_bcc_before(line)
    result = run(ENVELOPE, data, CleanupOptions(mime_encoding=mode), Directory())
    assert HIDDEN.encode() not in result.message
    shown, sent = reader(result.message), reader(data)
    names = [name for name in shown if not name.startswith(("MIME-", "Content-"))]
    assert names == ["From", "To", "Subject"]  # (the MIME ones come with a re-encoded body)
    assert shown.defects == []  # the empty line is there: no reader has to guess
    # the header section ended at the unparsable line, where readers end it: same body
    assert shown.get_payload(decode=True) == sent.get_payload(decode=True)
    assert shown.get_payload(decode=True).startswith(line + b"\r\nX-After: 1\r\n\r\n")
    assert result.unreadable is not None and "not a header field" in result.unreadable
    assert {entry.option for entry in result.trace} >= {"bcc", "cleanup"}


async def test_bcc_before_an_unparsable_line_never_reaches_the_upstream(relay_for, upstream):
    relay = await relay_for(upstream)
    data = with_bcc_before(UNPARSABLE["8bit-field-name"])
    reply = await submit(port_of(relay), data, recipients=("dev@example.org", HIDDEN))
    assert reply.startswith("2.0.0")
    (received,) = await barrier(port_of(relay), upstream)
    assert HIDDEN.encode() not in received.content and b"Bcc" not in received.content
    assert received.recipients == ["dev@example.org", HIDDEN]  # still delivered to, hidden
