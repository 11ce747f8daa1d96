"""Property tests: any message, any mime_encoding -> strict-parsable, 7-bit where it must be,
the same decoded content byte for byte; malformed input never raises.
"""

from __future__ import annotations

import base64
import binascii
import email
from email import policy
from email.header import Header

from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

from relay.cleanup import CleanupOptions, Directory, run
from relay.cleanup.encoding import downgrade_8bit
from relay.cleanup.fields import make_field, parse_fields
from relay.cleanup.headers import _PLAIN_FROM, from_refusal
from relay.cleanup.mailbox import (
    Mailbox,
    format_address_list,
    parse_address_list,
    read_addresses,
)
from relay.cleanup.rfc2047 import decode_unstructured, encode_unstructured
from relay.model import Envelope

from .support import contents, header_names, leaves, lines, parsed

MODES = ["keep", "none", "base64", "qp", "quoted-printable", "auto"]
ENVELOPE = Envelope(sender="a@x.org", recipients=("b@x.org",))
SETTINGS = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])

text = st.text(st.characters(blacklist_categories=("Cs", "Cc")), max_size=120)
line = st.one_of(text, st.just("x" * 1200), st.just("trailing space "), st.just("--"), st.just("."))
bchars = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ'()+_,-./:=?"


@st.composite
def content(draw) -> bytes:
    """Text in a charset, CRLF lines (sometimes bare LF or CR inside), maybe over 998."""
    charset = draw(st.sampled_from(["utf-8", "iso-8859-1", "us-ascii"]))
    separator = draw(st.sampled_from(["\r\n", "\r\n", "\n", "\r"]))
    body = separator.join(draw(st.lists(line, max_size=6)))
    return body.encode(charset, "replace") + draw(st.sampled_from([b"", b"\r\n"]))


def encodings_for(data: bytes) -> list[str]:
    """The transfer encodings a sender could legally have used for ``data``."""
    safe = b"\x00" not in data and all(len(x) <= 998 for x in data.split(b"\r\n"))
    safe = (
        safe and b"\n" not in data.replace(b"\r\n", b"") and b"\r" not in data.replace(b"\r\n", b"")
    )
    options = ["base64", "quoted-printable"]
    if safe:
        options.append("8bit")
        if data.isascii():
            options.append("7bit")
    return options


def encode(data: bytes, encoding: str) -> bytes:
    if encoding == "base64":
        return base64.encodebytes(data).replace(b"\n", b"\r\n")
    if encoding == "quoted-printable":
        return binascii.b2a_qp(data, istext=False).replace(b"=\n", b"=\r\n")
    return data


@st.composite
def leaf(draw) -> bytes:
    content_type = draw(st.sampled_from(["text/plain", "text/html", "application/octet-stream"]))
    if content_type.startswith("text/"):
        data = draw(content())
        header = f"Content-Type: {content_type}; charset=utf-8\r\n"
    else:
        data = draw(st.binary(max_size=200))
        header = f"Content-Type: {content_type}\r\n"
    encoding = draw(st.sampled_from(encodings_for(data)))
    header += f"Content-Transfer-Encoding: {encoding}\r\n"
    return header.encode() + b"\r\n" + encode(data, encoding)


@st.composite
def entity(draw, depth: int = 0) -> bytes:
    if depth >= 2 or draw(st.booleans()):
        return draw(leaf())
    boundary = draw(st.text(bchars, min_size=1, max_size=40))
    subtype = draw(st.sampled_from(["mixed", "alternative", "related"]))
    parts = draw(st.lists(entity(depth + 1), min_size=1, max_size=3))
    assume(all(f"--{boundary}".encode() not in part for part in parts))
    body = b"".join(b"--" + boundary.encode() + b"\r\n" + part + b"\r\n" for part in parts)
    head = f'Content-Type: multipart/{subtype}; boundary="{boundary}"\r\n'.encode()
    return (
        head
        + b"\r\n"
        + draw(st.sampled_from([b"", b"preamble\r\n"]))
        + body
        + (b"--" + boundary.encode() + b"--\r\n")
    )


@st.composite
def messages(draw) -> bytes:
    subject = draw(text)
    style = draw(st.sampled_from(["raw", "encoded"]))
    subject_field = subject if style == "raw" else Header(subject, "utf-8").encode()
    name = draw(st.sampled_from(["", "Zoë Müller", "O'Brien, Pat", "plain"]))
    sender = Header(name, "utf-8").encode() + " <zoe@example.org>" if name else "zoe@example.org"
    subject_field = subject_field.replace("\r", " ").replace("\n", " ")
    head = (
        f"From: {sender}\r\nTo: b@x.org\r\nSubject: {subject_field}\r\n"
        "Message-ID: <1@x.org>\r\nMIME-Version: 1.0\r\n"
    )
    return head.encode() + draw(entity())


def defects(data: bytes) -> list[str]:
    message = parsed(data)
    found = [str(d) for part in message.walk() for d in part.defects]
    found += [str(d) for part in message.walk() for value in part.values() for d in value.defects]
    return found


def raw_non_text_is_7bit(data: bytes) -> bool:
    return all(
        (part.get_payload(decode=False) or "").isascii() or part.get_content_maintype() == "text"
        for part in leaves(email.message_from_bytes(data, policy=policy.compat32))
    )


@SETTINGS
@given(messages(), st.sampled_from(MODES))
def test_every_mode_keeps_content_and_parses_strictly(data, mode):
    result = run(ENVELOPE, data, CleanupOptions(mime_encoding=mode), Directory())
    out = result.message
    assert contents(out) == contents(data)
    assert all(len(x) <= 998 for x in lines(out))
    assert header_names(out)[:5] == header_names(data)[:5]
    if not defects(data):
        assert defects(out) == []
        email.message_from_bytes(out, policy=policy.strict)
    if mode in ("base64", "qp", "quoted-printable", "auto"):
        for part in leaves(parsed(out)):
            if part.get_content_maintype() == "text":
                assert part["Content-Transfer-Encoding"] in ("7bit", "base64", "quoted-printable")
        if raw_non_text_is_7bit(data):
            assert out.isascii()


@SETTINGS
@given(messages())
@example(b"From: a@x.org\r\nSubject: \xc2\xa0 \r\nMIME-Version: 1.0\r\n\r\nhi\r\n")
def test_downgrade_8bit_is_7bit_and_lossless(data):
    out = downgrade_8bit(data)
    assert out.isascii()
    assert contents(out) == contents(data)
    assert parsed(out)["Subject"] == parsed(data)["Subject"]


@SETTINGS
@given(messages(), st.data())
def test_a_damaged_message_never_raises(data, draw):
    start = draw.draw(st.integers(0, len(data)))
    end = draw.draw(st.integers(start, len(data)))
    damaged = data[:start] + draw.draw(st.binary(max_size=20)) + data[end:]
    options = CleanupOptions(
        mime_encoding=draw.draw(st.sampled_from(MODES)), smtp_subject_prefix="[P]"
    )
    result = run(ENVELOPE, damaged, options, Directory())
    # a header section cut short or a body it could not take apart is reported for the
    # log, and only that
    notes = ("header section ends at ", "body left as it is: ")
    unread = [entry.change for entry in result.trace if entry.change.startswith(notes)]
    shown = [note.removesuffix("; an empty line put before it") for note in unread]
    assert result.unreadable == ("; ".join(shown) or None)


@SETTINGS
@given(st.binary(max_size=500), st.sampled_from(MODES))
def test_arbitrary_bytes_never_raise(data, mode):
    run(ENVELOPE, data, CleanupOptions(mime_encoding=mode, use_public_cc=True), Directory())
    downgrade_8bit(data)


@SETTINGS
@given(st.text(st.characters(blacklist_categories=("Cs",)), max_size=300))
def test_written_headers_are_one_7bit_field_that_decodes_back(value):
    field = make_field("Subject", encode_unstructured(value))
    assert len(parse_fields(field.raw)) == 1
    assert field.raw.isascii() and all(len(x) <= 998 for x in field.raw.split(b"\r\n"))
    if value.isprintable() and value == value.strip() and "  " not in value:
        assert decode_unstructured(field.value.decode()) == value


@SETTINGS
@given(st.text(st.characters(blacklist_categories=("Cs", "Cc")), max_size=80))
def test_display_names_survive_formatting(name):
    assume(name == name.strip() and "  " not in name)
    assume(all(char == " " or not char.isspace() for char in name))  # parsers fold white space
    # The stdlib phrase parser keeps the space between two adjacent encoded words, which
    # RFC 2047 section 6.2 says to drop; so only names that fit one encoded word are compared.
    assume(len(name.encode()) <= 40)
    written = format_address_list((Mailbox(name, "someone@example.org"),))
    assert written.isascii()
    assert parse_address_list(written) == (Mailbox(name, "someone@example.org"),)


@SETTINGS
@given(
    st.from_regex(_PLAIN_FROM, fullmatch=True)
    | st.text(st.sampled_from("ab.-+_!#'<>@ \"(),;:[]\\é"), max_size=30)
)
@example("Acceptance <trac@trac.example.org>")
@example("-@-")  # atext, but not a domain
def test_the_plain_from_shortcut_agrees_with_the_full_parse(value):
    # from_refusal skips the stdlib parse for a plain From: it may only skip a clean one
    field = make_field("From", value)
    if from_refusal((field,)) is None:
        items = read_addresses((field,), "From")
        assert items and all(isinstance(item, Mailbox) and "@" in item.address for item in items)
