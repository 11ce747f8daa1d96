"""Header rewriting: Bcc, From, Reply-To, alignment, subject prefix, line ends, injection."""

from __future__ import annotations

import pytest

from relay.cleanup import CleanupOptions, Directory, run
from relay.cleanup.fields import make_field, parse_fields
from relay.cleanup.rfc2047 import decode_unstructured
from relay.model import Envelope

from .support import lines, parsed, trac_message

ENVELOPE = Envelope(sender="trac@trac.example.org", recipients=("alice@example.com",))
TRAC = trac_message("new-and-change/0002")


def message(*headers: str, body: str = "hello\r\n") -> bytes:
    return ("\r\n".join(headers) + "\r\n\r\n" + body).encode()


def test_bcc_is_always_removed_even_folded_and_repeated():
    data = message(
        "From: a@x.org",
        "Bcc: secret@x.org,",
        " other@x.org",
        "To: b@x.org",
        "bcc: third@x.org",
        "Resent-Bcc: r@x.org",
        "Subject: s",
    )
    result = run(ENVELOPE, data, CleanupOptions(), Directory())
    assert result.message == message("From: a@x.org", "To: b@x.org", "Subject: s")
    assert [entry.option for entry in result.trace] == ["bcc", "bcc"]


def test_bare_lf_line_ends_become_crlf():
    data = b"From: a@x.org\nSubject: s\n\nline 1\nline 2\n"
    result = run(ENVELOPE, data, CleanupOptions(), Directory())
    assert result.message == data.replace(b"\n", b"\r\n")
    lines(result.message)


def test_smtp_from_sets_envelope_sender_and_from_keeping_the_name():
    options = CleanupOptions(smtp_from="notify")  # a bare name gets the default domain
    options = CleanupOptions(smtp_from="notify", smtp_default_domain="example.org")
    result = run(TRAC.envelope, TRAC.data, options, Directory())
    assert result.envelope.sender == "notify@example.org"
    assert str(parsed(result.message)["From"]) == "Acceptance <notify@example.org>"


def test_smtp_from_name_sets_the_display_name():
    result = run(
        TRAC.envelope, TRAC.data, CleanupOptions(smtp_from_name="Café Tracker"), Directory()
    )
    assert b"From: =?utf-8?q?Caf=C3=A9_Tracker?= <trac@trac.example.org>\r\n" in result.message
    assert str(parsed(result.message)["From"]) == "Café Tracker <trac@trac.example.org>"
    assert result.envelope == TRAC.envelope


def test_smtp_from_replaces_an_empty_from_keeping_its_name():
    """Trac 1.6 with an empty smtp_from writes ``From: Project <>``."""
    data = message("From: Project <>", "To: undisclosed-recipients: ;", "Subject: s")
    result = run(ENVELOPE, data, CleanupOptions(smtp_from="trac@example.org"), Directory())
    assert str(parsed(result.message)["From"]) == "Project <trac@example.org>"


def test_smtp_replyto_replaces_reply_to():
    result = run(
        TRAC.envelope, TRAC.data, CleanupOptions(smtp_replyto="help@example.org"), Directory()
    )
    assert str(parsed(result.message)["Reply-To"]) == "help@example.org"
    assert [entry.option for entry in result.trace] == ["smtp_replyto"]


@pytest.mark.parametrize(
    ("subject", "expected"),
    [
        ("Ticket 1", "[P] Ticket 1"),
        ("Re: Ticket 1", "Re: [P] Ticket 1"),
        ("Fwd: RE: Ticket 1", "Fwd: RE: [P] Ticket 1"),
        ("Re: [P] Ticket 1", None),
        ("[P] Re: Ticket 1", None),
        ("AW: Fwd: [P] x", None),
        ("", "[P]"),
    ],
)
def test_subject_prefix_is_added_once(subject, expected):
    data = message("From: a@x.org", f"Subject: {subject}")
    result = run(ENVELOPE, data, CleanupOptions(smtp_subject_prefix="[P]"), Directory())
    if expected is None:
        assert result.message == data
    else:
        assert str(parsed(result.message)["Subject"]) == expected


def test_subject_prefix_on_a_message_without_subject():
    result = run(
        ENVELOPE, message("From: a@x.org"), CleanupOptions(smtp_subject_prefix="[P]"), Directory()
    )
    assert str(parsed(result.message)["Subject"]) == "[P]"


def test_a_non_ascii_subject_is_re_encoded_correctly():
    data = trac_message("qp/0001").data
    result = run(ENVELOPE, data, CleanupOptions(smtp_subject_prefix="[Ünï]"), Directory())
    subject = parsed(result.message, strict=True)["Subject"]
    assert (
        subject
        == "[Ünï] [Acceptance] #1: Acceptance ticket 1: Café crème \u2013 ümläüts, 日本語 and 😀"
    )
    assert all(len(line) <= 78 for line in lines(result.message.split(b"\r\n\r\n")[0]))


@pytest.mark.parametrize("prefix", ["[x]\r\nBcc: evil@x.org", "=?utf-8?q?=0ABcc:_evil@x.org?="])
def test_a_prefix_can_never_start_a_header_line(prefix):
    options = CleanupOptions(smtp_subject_prefix=prefix)
    result = run(ENVELOPE, message("From: a@x.org", "Subject: s"), options, Directory())
    headers = parsed(result.message)
    assert "Bcc" not in headers and len(parsed(result.message).keys()) == 2
    assert prefix.replace("\r\n", " ") in headers["Subject"] or prefix in headers["Subject"]


def test_make_field_never_yields_two_fields():
    field = make_field("Subject", "a\r\nBcc: x@y\nTo: z")
    assert len(parse_fields(field.raw)) == 1


def test_align_sender_uses_the_account_and_keeps_the_author():
    data = message(
        "From: Alice Smith <alice@example.com>",
        "X-Trac-Project: My Project",
        "Reply-To: trac@example.org",
        "Subject: s",
    )
    options = CleanupOptions(align_sender=True)
    result = run(ENVELOPE, data, options, Directory(), account="relay@gmail.com")
    headers = parsed(result.message)
    assert result.envelope.sender == "relay@gmail.com"
    assert str(headers["From"]) == "Alice Smith via My Project <relay@gmail.com>"
    assert str(headers["Reply-To"]) == "Alice Smith <alice@example.com>"
    assert str(headers["X-Original-From"]) == "Alice Smith <alice@example.com>"
    assert {entry.option for entry in result.trace} == {"align_sender"}


def test_align_sender_without_an_account_changes_nothing():
    options = CleanupOptions(align_sender=True)
    result = run(TRAC.envelope, TRAC.data, options, Directory())
    assert result.message == TRAC.data and result.envelope == TRAC.envelope
    assert "no upstream account" in result.trace[0].change


def test_align_sender_when_from_is_already_the_account():
    data = message("From: Me <relay@gmail.com>", "Subject: s")
    result = run(
        ENVELOPE, data, CleanupOptions(align_sender=True), Directory(), account="relay@gmail.com"
    )
    assert result.message == data
    assert result.envelope.sender == "relay@gmail.com"


def test_trac_headers_and_threading_survive_header_rewrites():
    options = CleanupOptions(smtp_subject_prefix="[P]", smtp_replyto="r@example.org")
    result = run(TRAC.envelope, TRAC.data, options, Directory())
    before, after = TRAC.data.split(b"\r\n\r\n")[0], result.message.split(b"\r\n\r\n")[0]
    kept = [
        line for line in before.split(b"\r\n") if not line.startswith((b"Subject", b"Reply-To"))
    ]
    assert all(line in after.split(b"\r\n") for line in kept)
    assert result.message.split(b"\r\n\r\n", 1)[1] == TRAC.data.split(b"\r\n\r\n", 1)[1]


@pytest.mark.parametrize(
    "data",
    [
        b"\x01\x02garbage without headers",
        b" starts with a continuation\r\n\r\nbody",
        b"no colon here\r\n",
    ],
)
def test_a_header_block_that_is_no_header_becomes_the_body_behind_an_empty_line(data):
    # Postfix cleanup's rule (and where the stdlib parser ends the header section too)
    result = run(ENVELOPE, data, CleanupOptions(), Directory())
    assert result.message == b"\r\n" + data
    assert result.trace[-1].option == "cleanup" and "not a header field" in result.unreadable


def test_decode_unstructured_reports_broken_words():
    assert decode_unstructured("=?utf-8?q?caf=C3=A9?=") == "café"
    assert decode_unstructured("=?x-unknown?q?abc?=") is None


def test_a_header_block_without_a_final_crlf_gains_no_glued_field():
    data = b"From: A <a@x.org>\r\nSubject: x"
    options = CleanupOptions(smtp_always_cc=("c@x.org",), align_sender=True)
    result = run(ENVELOPE, data, options, Directory(), account="me@gmail.com")
    headers = parsed(result.message)
    assert headers["Subject"] == "x" and str(headers["Cc"]) == "c@x.org"
    assert str(headers["X-Original-From"]) == "A <a@x.org>"


def test_options_equal_to_what_trac_sent_change_nothing():
    options = CleanupOptions(
        smtp_from="trac@trac.example.org",
        smtp_from_name="Acceptance",
        smtp_replyto="trac@trac.example.org",
    )
    result = run(TRAC.envelope, TRAC.data, options, Directory())
    assert result.message == TRAC.data and result.trace == ()
