"""The message model built from raw RFC 5322 bytes."""

from __future__ import annotations

import datetime as dt

import pytest

from relay.gmail import MessageView
from relay.gmail.mime import MAX_CONTAINERS, html_to_text, nesting_problem

MULTIPART = (
    b"Received: from a by b; Tue, 10 Jun 2025 10:00:05 +0200\r\n"
    b"Received: from c by a; Tue, 10 Jun 2025 09:59:00 +0200\r\n"
    b"From: =?UTF-8?Q?J=C3=B6rg_M=C3=BCller?= <joerg@example.de>\r\n"
    b'To: a@example.com, "B, Bee" <b@example.com>\r\n'
    b"Subject: =?utf-8?b?R3LDvMOfZQ==?= und mehr\r\n"
    b"Message-ID: <Abc@Example.com>\r\n"
    b"List-Id: Dev list <dev.lists.example.org>\r\n"
    b"List-Post: <mailto:dev@lists.example.org>\r\n"
    b'Content-Type: multipart/mixed; boundary="B"\r\n'
    b"\r\n"
    b"--B\r\n"
    b"Content-Type: text/html; charset=utf-8\r\n\r\n"
    b"<p>Hello&nbsp;<b>W</b>orld</p><script>var hidden;</script>\r\n"
    b"--B\r\n"
    b'Content-Type: application/pdf; name="x.pdf"\r\n'
    b'Content-Disposition: attachment; filename="=?utf-8?q?R=C3=A9sum=C3=A9.pdf?="\r\n'
    b"Content-Transfer-Encoding: base64\r\n\r\n"
    b"AAAA\r\n"
    b"--B\r\n"
    b"Content-Type: image/png\r\n"
    b"Content-Disposition: inline\r\n\r\n"
    b"PNG\r\n"
    b"--B--\r\n"
)


def test_headers_are_decoded_and_addresses_split() -> None:
    view = MessageView.from_bytes(MULTIPART)
    (sender,) = view.mailboxes["from"]
    assert (sender.name.text, sender.address.text) == ("Jörg Müller", "joerg@example.de")
    assert [str(m) for m in view.mailboxes["to"]] == ["a@example.com", "B, Bee <b@example.com>"]
    assert view.subject.text == "Grüße und mehr"
    assert view.subject.tokens == ("grüsse", "und", "mehr")
    assert view.message_id == "abc@example.com"
    assert [str(m) for m in view.mailboxes["list"]] == [
        "Dev list <dev.lists.example.org>",
        "dev@lists.example.org",
    ]


def test_html_only_body_is_stripped_text_and_attachments_are_listed() -> None:
    view = MessageView.from_bytes(MULTIPART)
    assert view.body.tokens == ("hello", "world")
    assert [(a.filename, a.content_type, a.disposition, a.size) for a in view.attachments] == [
        ("Résumé.pdf", "application/pdf", "attachment", 3),
        ("", "image/png", "inline", 3),
    ]
    assert [t.text for t in view.filenames] == ["Résumé.pdf"]


def test_size_is_the_raw_length_and_arrival_is_the_topmost_received() -> None:
    view = MessageView.from_bytes(MULTIPART)
    assert view.size == len(MULTIPART)
    assert view.received_at == dt.datetime(2025, 6, 10, 8, 0, 5, tzinfo=dt.UTC)
    given = dt.datetime(2030, 1, 1, tzinfo=dt.UTC)
    assert MessageView.from_bytes(MULTIPART, received_at=given).received_at == given


def test_trac_base64_and_qp_bodies_decode_to_the_same_words(trac_view) -> None:
    base64, qp, raw = map(trac_view, ("base64/0001", "qp/0001", "none-nonascii/0001"))
    assert base64.body.tokens == qp.body.tokens == raw.body.tokens
    assert "köln" in base64.body.index
    assert base64.subject.text.endswith("Café crème \u2013 ümläüts, 日本語 and 😀")
    assert base64.received_at is None
    assert base64.arrival == dt.datetime(2026, 11, 21, 7, 31, 13, tzinfo=dt.UTC)


def test_envelope_recipients_become_bcc_and_delivered_to(trac_view) -> None:
    view = trac_view(
        "always-public-cc/0001",
        envelope_recipients=["bob@example.com", "Hidden@Example.com"],
        user_addresses=["Me@Example.com"],
    )
    assert [m.folded for m in view.mailboxes["bcc"]] == ["hidden@example.com"]
    assert [m.folded for m in view.mailboxes["deliveredto"]] == [
        "bob@example.com",
        "hidden@example.com",
    ]
    assert view.user_addresses == ("me@example.com",)


def test_undisclosed_recipients_group_gives_no_mailbox(trac_view) -> None:
    assert trac_view("new-and-change/0001").mailboxes["to"] == ()


def test_html_to_text_breaks_blocks_but_not_inline_tags() -> None:
    assert html_to_text("<b>Ch</b>anges<br>by<td>x</td>&amp;") == "Changes\nby\nx\n&"


def test_header_with_a_garbage_charset_still_gives_a_view():
    view = MessageView.from_bytes(b"Subject: =?\xffutf-8?q?x?=\r\nFrom: a@b.example\r\n\r\nhi\r\n")
    assert view.subject.text == "=?\ufffdutf-8?q?x?="  # kept as raw text, not an error


def nested(depth: int, subtype: bytes = b"mixed") -> bytes:
    """``depth`` multiparts inside each other around one text part.

    The part of a multipart/digest has no header (it is a message/rfc822 by default): the
    message inside it is one more level.
    """
    part_head = b"\r\n" if subtype == b"digest" else b""
    opening = b"".join(
        b'Content-Type: multipart/%s; boundary="d%d"\r\n\r\n--d%d\r\n%s'
        % (subtype, n, n, part_head)
        for n in range(depth)
    )
    closing = b"".join(b"\r\n--d%d--\r\n" % n for n in reversed(range(depth)))
    head = b"From: trac@example.org\r\nSubject: deep\r\nMIME-Version: 1.0\r\n"
    return head + opening + b"Content-Type: text/plain\r\n\r\ndeep words\r\n" + closing


def test_a_message_nested_too_deep_for_the_parser_is_read_header_only() -> None:
    # the stdlib parser recurses once per level: 5000 would raise RecursionError
    view = MessageView.from_bytes(nested(5000))
    assert view.subject.text == "deep" and view.mailboxes["from"][0].folded == "trac@example.org"
    assert view.body.text == "" and view.attachments == ()
    assert view.unread is not None and str(MAX_CONTAINERS) in view.unread


def test_nesting_up_to_the_limit_is_read_whole() -> None:
    # digest parts are messages without a Content-Type: two levels per multipart
    for message in (nested(MAX_CONTAINERS, b"digest"), nested(MAX_CONTAINERS)):
        view = MessageView.from_bytes(message)
        assert view.unread is None and view.body.text.strip() == "deep words"
    assert MessageView.from_bytes(nested(MAX_CONTAINERS + 1)).unread is not None


def test_a_wide_message_is_not_mistaken_for_a_deep_one() -> None:
    part = b"--B\r\nContent-Type: text/plain\r\n\r\nword\r\n"
    wide = b'Content-Type: multipart/mixed; boundary="B"\r\n\r\n' + part * 5000 + b"--B--\r\n"
    view = MessageView.from_bytes(wide)
    assert view.unread is None and view.body.text.count("word") == 5000


@pytest.mark.parametrize(
    ("field", "counted"),
    [
        (b"Content-Type: multipart/mixed", True),
        (b"CONTENT-TYPE : Multipart/Mixed", True),
        (b"Content-Type:\r\n (comment)\r\n\tmessage/rfc822", True),  # folded, after a comment
        (b"X-Other: x\rContent-Type: multipart/mixed", True),  # the parser breaks at a bare CR
        (b"Content-Type: text/plain", False),
        (b"X-Content-Type: multipart/mixed", False),
        (b"Subject: Content-Type: multipart/mixed", False),
    ],
)
def test_nesting_problem_counts_every_field_that_can_open_a_level(field, counted) -> None:
    message = (field + b"\r\n") * (MAX_CONTAINERS + 1) + b"\r\nbody\r\n"
    assert (nesting_problem(message) is not None) == counted


@pytest.mark.parametrize(
    "subject",
    ["Grüße aus Köln", "Grüße aus =?utf-8?q?K=C3=B6ln?=", "=?utf-8?q?Gr=C3=BC=C3=9Fe?= aus Köln"],
)
def test_raw_utf8_header_fields_are_read_as_utf8(subject):
    # SMTPUTF8 mail (RFC 6532): raw UTF-8 in header fields, alone or beside encoded words
    raw = f"From: Jörg Müller <jörg@example.org>\r\nSubject: {subject}\r\n\r\nx\r\n".encode()
    view = MessageView.from_bytes(raw)
    assert view.subject.text == "Grüße aus Köln"
    (sender,) = view.mailboxes["from"]
    assert (sender.name.text, sender.address.text) == ("Jörg Müller", "jörg@example.org")
