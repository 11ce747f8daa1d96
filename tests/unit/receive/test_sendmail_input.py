"""The sendmail command's input handling and exit codes (pure)."""

from __future__ import annotations

import email
from email import policy
from email.utils import getaddresses

import pytest
from helpers import FIXTURES

from relay.cli.sendmail import exit_code
from relay.receive.sendmail import (
    UnreadableHeader,
    header_recipients,
    read_message,
    with_missing_headers,
    without_header,
)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (b"Subject: x\n\nline\n", b"Subject: x\r\n\r\nline\r\n"),
        (b"Subject: x\r\n\r\nline\r\n", b"Subject: x\r\n\r\nline\r\n"),
        (b"Subject: x\n\nno final newline", b"Subject: x\r\n\r\nno final newline\r\n"),
        (b"a\rb\n", b"a\r\nb\r\n"),
        (b"", b""),
    ],
)
def test_every_line_ending_becomes_crlf(raw: bytes, expected: bytes) -> None:
    assert read_message(raw, dot_ends=False) == expected


def test_lone_dot_is_text_with_dash_i() -> None:
    raw = b"Subject: x\n\nbefore\n.\nafter\n"
    assert read_message(raw, dot_ends=False) == b"Subject: x\r\n\r\nbefore\r\n.\r\nafter\r\n"


@pytest.mark.parametrize(
    "raw", [b"Subject: x\n\nbefore\n.\nafter\n", b"Subject: x\r\n\r\nbefore\r\n.\r\nafter\r\n"]
)
def test_lone_dot_ends_the_message_without_dash_i(raw: bytes) -> None:
    assert read_message(raw, dot_ends=True) == b"Subject: x\r\n\r\nbefore\r\n"


def test_dots_inside_lines_never_end_the_message() -> None:
    raw = b"Subject: x\n\n..\n. x\nend.\n"
    assert read_message(raw, dot_ends=True) == raw.replace(b"\n", b"\r\n")


def test_header_recipients_reads_to_cc_and_bcc_once_each() -> None:
    message = (
        b'To: Bob <bob@x.org>, carol@x.org\r\nCc: "D, E" <de@x.org>\r\n'
        b"Bcc: bob@x.org,\r\n hidden@x.org\r\nSubject: To: not@x.org\r\n\r\nTo: body@x.org\r\n"
    )
    assert header_recipients(message) == ("bob@x.org", "carol@x.org", "de@x.org", "hidden@x.org")


@pytest.mark.parametrize(
    ("field", "expected"),
    [
        (b'To: "Doe, Jane" <jane@x.org>, bob@x.org', ("jane@x.org", "bob@x.org")),
        (b"To: =?utf-8?q?B=C3=A9a=2C_Ops?= <bea@x.org>", ("bea@x.org",)),
        (b'To: "evil@attacker.test" <dev@x.org>', ("dev@x.org",)),
        (b"To: undisclosed-recipients: ;", ()),
        (b"To: team: ann@x.org, al@x.org;", ("ann@x.org", "al@x.org")),
        (b"To: alice, bob@x.org", ("alice", "bob@x.org")),  # Trac's bare user names
        ("To: Zo\u00eb <zoe@x.org>".encode(), ("zoe@x.org",)),
    ],
)
def test_header_recipients_reads_real_address_headers(field: bytes, expected: tuple) -> None:
    assert header_recipients(field + b"\r\nSubject: s\r\n\r\nbody\r\n") == expected


@pytest.mark.parametrize(
    "head",
    [
        b"To: alice@example.org)<evil@attacker.test>",  # getaddresses: alice *and* evil
        b"To: <dev@example.org>evil@attacker.test",
        b'To: "unclosed <dev@example.org>, evil@attacker.test',
        b"To: dev@example.org\r\nCc: a@x.org, b@@x.org",
        b"Bcc: dev@example.org,\r\n evil@attacker.test>",
        b"To: caf\xe9@x.org",  # not UTF-8
        b"not a header line\r\nTo: dev@example.org",
    ],
)
def test_header_recipients_refuses_what_it_cannot_read_strictly(head: bytes) -> None:
    with pytest.raises(UnreadableHeader):
        header_recipients(head + b"\r\nSubject: s\r\n\r\nbody\r\n")


@pytest.mark.parametrize("path", sorted((FIXTURES / "trac").rglob("*.eml")), ids=str)
def test_header_recipients_reads_every_trac_fixture(path) -> None:
    # on well-formed headers the strict reading and the stdlib's lenient one agree
    message = read_message(path.read_bytes(), dot_ends=False)
    parsed = email.message_from_bytes(message, policy=policy.compat32)
    values = [value for name in ("To", "Cc", "Bcc") for value in parsed.get_all(name, [])]
    lenient = [address for _, address in getaddresses(values) if address]
    assert header_recipients(message) == tuple(dict.fromkeys(lenient))


def test_without_header_drops_folded_lines_and_keeps_the_body() -> None:
    message = b"To: a@x\r\nBcc: b@x,\r\n\tc@x\r\nSubject: s\r\n\r\nBcc: in body\r\n"
    assert without_header(message, "Bcc") == b"To: a@x\r\nSubject: s\r\n\r\nBcc: in body\r\n"


def test_from_date_and_message_id_are_added_only_when_missing() -> None:
    message = b"Subject: s\r\n\r\nbody\r\n"
    added = {"date": "Thu, 03 Dec 2026 16:00:00 +0000", "message_id": "<1@x.org>"}
    assert with_missing_headers(message, sender="trac@x.org", name="Trac Bot", **added) == (
        b"From: Trac Bot <trac@x.org>\r\nDate: Thu, 03 Dec 2026 16:00:00 +0000\r\n"
        b"Message-ID: <1@x.org>\r\n" + message
    )
    named = with_missing_headers(message, sender="trac@x.org", name="Tr\u00e4c", **added)
    assert named.startswith(b"From: =?utf-8?")
    already = b"From: other@x.org\r\nDATE: x\r\nMessage-Id: <2@x.org>\r\n" + message
    assert with_missing_headers(already, sender="trac@x.org", name="Trac", **added) == already


@pytest.mark.parametrize(
    ("code", "stage", "expected"),
    [
        (421, "connect", 75),
        (554, "connect", 77),
        (451, "mail", 75),
        (553, "mail", 65),
        (550, "rcpt", 67),
        (452, "rcpt", 75),
        (552, "data", 65),
    ],
)
def test_exit_codes_follow_sysexits(code: int, stage: str, expected: int) -> None:
    assert exit_code(code, stage) == expected
