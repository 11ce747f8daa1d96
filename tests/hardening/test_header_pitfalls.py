"""Header blocks that cleanup cannot fully read, and entities that say two things at once
(hardening issue items 5 and 8).

A Bcc never leaves the relay, whatever else the header block holds: as in Postfix, a line
that is not a header field ends the header section (an empty line is put before it, so
every later reader agrees where the body starts). A MIME entity with two Content-Type or
Content-Transfer-Encoding fields is read by its first one, as the stdlib and mail readers
do, so re-encoding never changes the text a reader shows.
"""

from __future__ import annotations

import base64
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


@pytest.mark.parametrize("line", UNPARSABLE.values(), ids=UNPARSABLE)
async def test_bcc_before_an_unparsable_line_never_reaches_the_upstream(relay_for, upstream, line):
    relay = await relay_for(upstream)
    data = with_bcc_before(line)
    reply = await submit(port_of(relay), data, recipients=("dev@example.org", HIDDEN))
    assert reply.startswith("2.0.0")
    (received,) = await barrier(port_of(relay), upstream)
    assert HIDDEN.encode() not in received.content and b"Bcc" not in received.content
    assert received.recipients == ["dev@example.org", HIDDEN]  # still delivered to, hidden


# --- item 8: two Content-Type or Content-Transfer-Encoding fields -------------------------

TEXT = "Grüße aus Köln: ticket #1 changed\r\n"
B64 = base64.encodebytes(TEXT.encode()).replace(b"\n", b"\r\n")
MULTIPART = (
    b"--B\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n" + TEXT.encode() + b"\r\n"
    b"--B\r\nContent-Type: text/plain\r\n\r\nsecond part\r\n--B--\r\n"
)
DOUBLED = {
    "cte-base64-then-7bit": (
        b"Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n"
        b"Content-Transfer-Encoding: 7bit\r\n",
        B64,
    ),
    "cte-8bit-then-base64": (
        b"Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n"
        b"Content-Transfer-Encoding: base64\r\n",
        TEXT.encode(),
    ),
    "ct-text-then-multipart": (
        b"Content-Type: text/plain; charset=utf-8\r\n"
        b'Content-Type: multipart/mixed; boundary="B"\r\n',
        MULTIPART,
    ),
    "ct-multipart-then-text": (
        b'Content-Type: multipart/mixed; boundary="B"\r\n'
        b"Content-Type: text/plain; charset=utf-8\r\n",
        MULTIPART,
    ),
    "nested-part": (
        b'Content-Type: multipart/mixed; boundary="A"\r\n',
        b"--A\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n"
        b"Content-Transfer-Encoding: quoted-printable\r\n\r\n" + B64 + b"--A--\r\n",
    ),
}


def shown_text(data: bytes) -> list[str]:
    """What a reader shows: the decoded text of every leaf, through the stdlib parser."""
    return [part.get_content() for part in reader(data).walk() if not part.is_multipart()]


@pytest.mark.parametrize(("fields", "body"), DOUBLED.values(), ids=DOUBLED)
@pytest.mark.parametrize("mode", ["auto", "qp", "base64", "none"])
def test_doubled_content_fields_never_change_what_a_reader_shows(fields, body, mode):
    data = b"From: trac@example.org\r\nSubject: s\r\nMIME-Version: 1.0\r\n" + fields
    data += b"\r\n" + body
    result = run(ENVELOPE, data, CleanupOptions(mime_encoding=mode), Directory())
    assert shown_text(result.message) == shown_text(data)
