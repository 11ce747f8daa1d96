"""Transfer encodings: mime_encoding modes, long lines, downgrade_8bit, malformed MIME."""

from __future__ import annotations

import base64

import pytest

from relay.cleanup import CleanupOptions, Directory, run
from relay.cleanup.encoding import downgrade_8bit, encode_qp, transcode
from relay.cleanup.mime import MAX_DEPTH, parse, serialise
from relay.model import Envelope

from .support import contents, leaves, lines, parsed, trac_message

ENVELOPE = Envelope(sender="a@x.org", recipients=("b@x.org",))


def single(
    body: bytes, encoding: str = "8bit", content_type: str = "text/plain; charset=utf-8"
) -> bytes:
    head = f"From: a@x.org\r\nMIME-Version: 1.0\r\nContent-Type: {content_type}\r\n"
    return (head + f"Content-Transfer-Encoding: {encoding}\r\n\r\n").encode() + body


def encoding_of(data: bytes) -> str:
    return str(leaves(parsed(data))[0]["Content-Transfer-Encoding"])


def rewrite(data: bytes, mode: str) -> bytes:
    return run(ENVELOPE, data, CleanupOptions(mime_encoding=mode), Directory()).message


@pytest.mark.parametrize(
    "content", [b"a\r\nb\nc\rd\r\n", b"trailing space \r\n\ttab\t", b"=3D", b""]
)
def test_encode_qp_round_trips_any_bytes(content):
    import binascii

    encoded = encode_qp(content)
    assert binascii.a2b_qp(encoded) == content
    assert encoded.isascii() and all(len(line) <= 76 for line in encoded.split(b"\r\n"))


def test_auto_picks_qp_for_mostly_ascii_and_base64_for_cjk():
    latin = single("Grüße aus Köln, mostly plain text.\r\n".encode())
    cjk = single(("日本語のテキスト" * 20 + "\r\n").encode())
    assert encoding_of(rewrite(latin, "auto")) == "quoted-printable"
    assert encoding_of(rewrite(cjk, "auto")) == "base64"


def test_auto_and_none_turn_plain_ascii_into_7bit():
    data = single(base64.encodebytes(b"just ascii\r\n").replace(b"\n", b"\r\n"), "base64")
    for mode in ("auto", "none"):
        out = rewrite(data, mode)
        assert encoding_of(out) == "7bit" and out.endswith(b"\r\n\r\njust ascii\r\n")


def test_none_with_non_ascii_sends_8bit():
    data = trac_message("qp/0001").data
    out = rewrite(data, "none")
    assert encoding_of(out) == "8bit" and "Café".encode() in out
    assert contents(out) == contents(data)


def test_none_with_a_long_line_falls_back_to_qp():
    data = single(b"x" * 2000 + b"\r\n", "8bit")
    out = rewrite(data, "none")
    assert encoding_of(out) == "quoted-printable"
    assert contents(out) == contents(data)


@pytest.mark.parametrize("content_type", ["text/plain", "application/octet-stream"])
def test_keep_still_never_sends_a_line_over_998_octets(content_type):
    data = single(b"y" * 1500 + b"\r\n", "7bit", content_type)
    result = run(ENVELOPE, data, CleanupOptions(), Directory())
    assert all(len(line) <= 998 for line in lines(result.message))
    assert contents(result.message) == contents(data)
    assert result.trace[0].option == "line length"


def test_non_text_parts_keep_their_encoding():
    data = single(b"\xff\xfe 8-bit but line-safe\r\n", "8bit", "application/x-thing")
    assert rewrite(data, "qp") == data


def test_a_part_with_nul_is_never_sent_raw():
    data = single(b"\x00\x01binary", "binary", "application/x-thing")
    out = rewrite(data, "keep")
    assert encoding_of(out) == "base64" and contents(out) == contents(data)


def test_undecodable_base64_is_left_alone_with_a_note():
    data = single(b"@@@not base64@@@\r\n", "base64")
    result = run(ENVELOPE, data, CleanupOptions(mime_encoding="qp"), Directory())
    assert result.message == data
    assert "cannot decode" in result.trace[0].change


def test_a_top_level_part_without_mime_version_gets_one():
    data = b"From: a@x.org\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nh\xc3\xa9\r\n"
    out = rewrite(data, "base64")
    assert parsed(out)["MIME-Version"] == "1.0"
    assert contents(out) == [b"h\xc3\xa9\r\n"]


@pytest.mark.parametrize(
    "data",
    [
        b"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n\r\nno end\r\n",
        b"Content-Type: multipart/mixed; boundary=b\r\n\r\nno boundary at all\r\n",
        b"Content-Type: multipart/mixed\r\n\r\n--b\r\n\r\nx\r\n--b--\r\n",
    ],
)
def test_malformed_multipart_body_is_passed_on_with_a_note(data):
    result = run(ENVELOPE, data, CleanupOptions(mime_encoding="base64"), Directory())
    assert result.message == data
    assert result.trace[-1].option == "mime_encoding" and "left as it is" in result.trace[-1].change


def test_nesting_deeper_than_the_limit_is_not_followed():
    data = b"".join(
        f"Content-Type: multipart/mixed; boundary=b{i}\r\n\r\n--b{i}\r\n".encode()
        for i in range(MAX_DEPTH + 5)
    )
    result = run(ENVELOPE, data, CleanupOptions(mime_encoding="qp"), Directory())
    assert result.message == data


def test_parse_and_serialise_give_the_bytes_back():
    data = (
        b'Content-Type: multipart/mixed; boundary="o d d\'()+_,-./:=?"\r\n\r\npreamble\r\n'
        b"--o d d'()+_,-./:=?  \r\nContent-Type: message/rfc822\r\n\r\n"
        b"Subject: inner\r\n\r\ninner body\r\n"
        b"--o d d'()+_,-./:=?\r\n\r\nno headers\r\n--o d d'()+_,-./:=?--\r\nepilogue"
    )
    entity = parse(data)
    assert serialise(entity) == data
    assert [part.content_type for part in entity.parts] == ["message/rfc822", "text/plain"]


def test_downgrade_8bit_makes_a_trac_message_7bit():
    data = trac_message("none-nonascii/0001").data
    out = downgrade_8bit(data)
    assert out.isascii()
    assert contents(out) == contents(data)
    assert encoding_of(out) == "quoted-printable"
    assert parsed(out)["Subject"] == parsed(data)["Subject"]


def test_downgrade_8bit_encodes_raw_utf8_headers_and_binary_parts():
    data = (
        "From: Zoë <z@x.org>\r\nSubject: Grüße\r\nMIME-Version: 1.0\r\n"
        "Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n"
        "Content-Type: application/octet-stream\r\nContent-Transfer-Encoding: 8bit\r\n\r\n"
    ).encode() + b"\xff\xfe\r\n--b--\r\n"
    out = downgrade_8bit(data)
    assert out.isascii()
    headers = parsed(out, strict=True)
    assert headers["Subject"] == "Grüße" and str(headers["From"]) == "Zoë <z@x.org>"
    assert contents(out) == contents(data)


def test_downgrade_8bit_leaves_7bit_and_hopeless_messages_alone():
    ascii_message = trac_message("none-ascii/0001").data
    assert downgrade_8bit(ascii_message) is ascii_message
    hopeless = b"\xff\xfe not a message"
    assert downgrade_8bit(hopeless) == hopeless


def test_transcode_reports_nothing_when_nothing_changes():
    data = trac_message("base64/0001").data
    assert transcode(data, "base64") == (data, ())
