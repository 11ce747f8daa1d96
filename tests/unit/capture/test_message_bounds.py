"""Reading a captured message is bounded: parts, header fields and body text."""

from __future__ import annotations

import time

from relay.capture.message import MAX_BODY, MAX_HEADERS, MAX_PARTS, contents, detail, part_payload


def nested(outer: int, inner: int) -> bytes:
    """multipart/mixed of ``outer`` multipart/alternative parts of ``inner`` text parts."""
    alternative = (
        b'--o\r\nContent-Type: multipart/alternative; boundary="i"\r\n\r\n'
        + b"--i\r\nContent-Type: text/plain\r\n\r\nx\r\n" * inner
        + b"--i--\r\n"
    )
    return (
        b"Subject: nested\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=o\r\n\r\n"
        + alternative * outer
        + b"--o--\r\n"
    )


def test_parts_beyond_the_limit_are_counted_not_read() -> None:
    raw = nested(40, 30)  # 40 outer + 1200 inner body parts: within MAX_CONTAINERS
    started = time.monotonic()
    read = contents(raw)
    assert time.monotonic() - started < 2.0
    body_parts = 40 + 40 * 30
    assert read.parts_omitted == body_parts - MAX_PARTS
    assert 0 < len(read.parts) < MAX_PARTS
    assert part_payload(raw, len(read.parts) - 1) is not None
    assert part_payload(raw, len(read.parts)) is None


def test_a_message_within_the_limits_is_read_whole() -> None:
    raw = nested(2, 3)
    read = contents(raw)
    assert read.parts_omitted == 0 and read.headers_omitted == 0 and len(read.parts) == 6


def test_header_fields_and_bodies_are_cut_with_a_note() -> None:
    fields = b"X-N: 1\r\n" * 300_000  # 2.4 MB of header: seconds for the stdlib parser
    mime = b"Content-Type: text/plain; charset=iso-8859-1\r\n"  # after the limit, still read
    raw = b"Subject: long\r\n" + fields + mime + b"\r\n\xe9" + b"y" * (MAX_BODY + 10)
    started = time.monotonic()
    shown = detail({"id": "Q1"}, raw, None)
    assert time.monotonic() - started < 2.0
    assert len(shown["headers"]) == MAX_HEADERS
    assert shown["headers_omitted"] == 300_002 - MAX_HEADERS
    assert shown["text"].startswith("\xe9y")
    assert len(shown["text"]) == MAX_BODY and shown["text_truncated"]
    assert not shown["html_truncated"] and shown["parts_omitted"] == 0
    assert shown["raw_url"] == "/api/v1/messages/Q1/raw"
