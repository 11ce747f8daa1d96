"""Property-based fuzzing of the whole cleanup stage with malformed MIME (security
reference E.37): missing and duplicate boundaries, broken base64 and quoted-printable,
deep nesting, huge headers, invalid charsets and RFC 2047 garbage, under every option
that makes cleanup parse or rewrite.

The properties: ``relay.cleanup.run`` never raises; it changes nothing it does not note
in the trace; every leaf's decoded content survives whatever it rewrites; and a header
block that is no header becomes the body behind an empty line, with a note. The
well-formed side (every ``mime_encoding`` keeps content, strict parsability) is
tests/unit/cleanup/test_properties.py.
"""

from __future__ import annotations

import base64
import binascii
import email
import logging
import time
from email import policy
from pathlib import Path

import pytest
from helpers import port_of
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from relay.cleanup import CleanupOptions, Directory, run
from relay.cleanup.fields import normalise_line_ends
from relay.model import Envelope

from .flow import barrier

ENVELOPE = Envelope(sender="trac@example.org", recipients=("dev@example.org",))
SETTINGS = settings(max_examples=200, deadline=None, suppress_health_check=list(HealthCheck))

GARBAGE_WORDS = [
    "=?utf-8?B?!!!?=",
    "=?utf-8?Q?=ZZ=?=",
    "=?x-unknown-charset?Q?abc?=",
    "=?utf-8?q?unterminated",
    "=?=?=",
    "=?utf-8?b?w6k=?==?utf-8?b?w6k?=",
    "=?iso-8859-1?q?caf=E9?=",
    "=?utf-8?q?a=0D=0AX-Injected:_1?=",
]
CHARSETS = ["utf-8", "us-ascii", "iso-8859-1", "x-unknown", "utf-8\x00", '"', "utf-7", ""]
options = st.builds(
    CleanupOptions,
    mime_encoding=st.sampled_from(["keep", "none", "base64", "qp", "auto"]),
    smtp_subject_prefix=st.sampled_from([None, "[trac]"]),
    smtp_default_domain=st.sampled_from([None, "example.org"]),
    use_public_cc=st.sampled_from([None, True, False]),
)
text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=60)


@st.composite
def header_value(draw) -> bytes:
    parts = draw(st.lists(st.one_of(text, st.sampled_from(GARBAGE_WORDS)), max_size=4))
    value = " ".join(parts).replace("\r", " ").replace("\n", " ").encode("utf-8", "replace")
    if draw(st.booleans()):
        value = draw(st.sampled_from([b"\xff\xfe raw 8-bit", b"x" * 2000, b"a, " * 3000]))
    return value


@st.composite
def broken_body(draw, encoding: str) -> bytes:
    data = draw(st.binary(max_size=200))
    if encoding == "base64":
        encoded = base64.encodebytes(data).replace(b"\n", b"\r\n")
        damage = draw(st.sampled_from([b"", b"!!", b"=", b"====", b"\xff", b"abc"]))
        cut = draw(st.integers(0, len(encoded)))
        return encoded[:cut] + damage + encoded[cut:]
    if encoding == "quoted-printable":
        encoded = binascii.b2a_qp(data).replace(b"\n", b"\r\n")
        return encoded + draw(st.sampled_from([b"", b"=ZZ", b"=", b"=\r\n=\r\n", b"=0"]))
    return data.replace(b"\r", b"").replace(b"\n", b"\r\n")


@st.composite
def leaf(draw) -> bytes:
    encoding = draw(st.sampled_from(["7bit", "8bit", "base64", "quoted-printable", "x-uue"]))
    charset = draw(st.sampled_from(CHARSETS))
    kind = draw(st.sampled_from(["text/plain", "text/html", "application/octet-stream"]))
    head = f"Content-Type: {kind}; charset={charset}\r\nContent-Transfer-Encoding: {encoding}\r\n"
    return head.encode("utf-8", "replace") + b"\r\n" + draw(broken_body(encoding))


@st.composite
def entity(draw, depth: int = 0, parent: str = "") -> bytes:
    if depth >= 3 or draw(st.integers(0, 2)) == 0:
        return draw(leaf())
    boundary = draw(st.sampled_from(["b1", "b2", "same", parent or "b3", "=_x", ""]))
    parts = draw(st.lists(entity(depth + 1, boundary), min_size=0, max_size=3))
    damage = draw(
        st.sampled_from(["none", "no-close", "never-appears", "no-param", "double-close"])
    )
    head = b'Content-Type: multipart/mixed; boundary="%s"\r\n\r\n' % boundary.encode()
    if damage == "no-param":
        head = b"Content-Type: multipart/mixed\r\n\r\n"
    marker = b"--" + (b"other" if damage == "never-appears" else boundary.encode())
    body = b"".join(marker + b"\r\n" + part + b"\r\n" for part in parts)
    close = {"no-close": b"", "double-close": marker + b"--\r\n" + marker + b"--\r\n"}
    return head + b"preamble\r\n" + body + close.get(damage, marker + b"--\r\n")


def nested(depth: int) -> bytes:
    """``depth`` multiparts inside each other (deeper than cleanup's limit of 50)."""
    opening = b"".join(
        b'Content-Type: multipart/mixed; boundary="d%d"\r\n\r\n--d%d\r\n' % (n, n)
        for n in range(depth)
    )
    closing = b"".join(b"\r\n--d%d--\r\n" % n for n in reversed(range(depth)))
    return opening + b"Content-Type: text/plain\r\n\r\ndeep\r\n" + closing


@st.composite
def messages(draw) -> bytes:
    head = b"From: " + draw(header_value()) + b" <trac@example.org>\r\n"
    head += b"To: dev@example.org, " + draw(header_value()) + b"\r\n"
    head += b"Subject: " + draw(header_value()) + b"\r\nMIME-Version: 1.0\r\n"
    body = draw(st.one_of(entity(), st.sampled_from([nested(60), nested(5)])))
    return head + body


def leaves(data: bytes) -> list[tuple[str, bytes]] | None:
    """(content type, decoded payload) of every leaf, as the lenient stdlib reads them;
    None when the stdlib parser itself gives up (it recurses once per nesting level)."""
    try:
        message = email.message_from_bytes(data, policy=policy.compat32)
        return [
            (part.get_content_type(), part.get_payload(decode=True) or b"")
            for part in message.walk()
            if not part.is_multipart()
        ]
    except RecursionError:
        return None


def body_of(data: bytes) -> bytes:
    return data.partition(b"\r\n\r\n")[2]


@SETTINGS
@given(messages(), options)
def test_malformed_mime_never_raises_and_keeps_what_it_can_deliver(data, opts):
    result = run(ENVELOPE, data, opts, Directory())
    out, notes = result.message, [entry.change for entry in result.trace]
    assert result.rejection is None and result.envelope.recipients == ENVELOPE.recipients
    if not notes:
        assert out == data  # nothing changes without a note
    sent = normalise_line_ends(data)  # bare LF becomes CRLF, with its own note
    if any("body left as it is" in note for note in notes):
        assert body_of(out) == body_of(sent)
    assert leaves(out) == leaves(sent)


@SETTINGS
@given(
    st.binary(max_size=300).filter(lambda head: b":" not in head.split(b"\r\n")[0]),
    options,
)
def test_a_header_block_that_is_no_header_becomes_the_body_with_a_note(junk, opts):
    # as in Postfix cleanup: an empty line goes before the first line that is not a header
    # field, and what follows is body for every reader (the stdlib reads it so already)
    data = junk.replace(b"\n", b"\r\n").lstrip(b" \t") + b"\r\n\r\nbody\r\n"
    if data.startswith(b"\r\n"):
        data = b"\x01" + data
    result = run(ENVELOPE, data, opts, Directory())
    assert leaves(result.message) == leaves(b"\r\n" + normalise_line_ends(data))
    assert any("empty line put before it" in entry.change for entry in result.trace)
    assert result.unreadable is not None
    assert result.unreadable.startswith("header section ends at a line that is not a header")


HUGE = {
    "100k-parts": b"MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=B\r\n\r\n"
    + b"--B\r\nContent-Type: text/plain\r\n\r\nx\r\n" * 100_000
    + b"--B--\r\n",
    "5000-deep": b"MIME-Version: 1.0\r\n" + nested(5000),
    "1MB-header": b"To: " + b", ".join(b"u%d@example.org" % n for n in range(60_000)) + b"\r\n"
    b"Subject: x\r\n\r\nbody\r\n",
    "998-octet-lines": b"Subject: long\r\n\r\n" + (b"y" * 998 + b"\r\n") * 5000,
}


@pytest.mark.parametrize("data", HUGE.values(), ids=HUGE)
def test_pathological_messages_are_handled_in_bounded_time(data):
    # bpo-31449 (many parts), deep nesting, gh-136063 (quadratic header parser): each is
    # rewritten or passed on within seconds, holding the GIL no longer than that. The bound
    # is on this thread's CPU time, not the wall clock, so a busy machine cannot fail it:
    # 100k parts take about 3.5 s of CPU here, and a quadratic step would take hours.
    opts = CleanupOptions(mime_encoding="qp", use_public_cc=True, smtp_default_domain="x.org")
    started = time.thread_time()
    result = run(ENVELOPE, data, opts, Directory())
    assert time.thread_time() - started < 10
    if len(data) > 2**21:
        return  # 100k parts: the stdlib takes seconds to compare; test_properties covers it
    if leaves(data) is None:  # too deep for anyone to follow: the body passes unchanged
        assert body_of(result.message) == body_of(data)
    assert leaves(result.message) == leaves(data)


async def test_a_message_without_a_header_block_is_delivered_as_body_with_a_log_line(
    relay_for, upstream, caplog
):
    relay = await relay_for(upstream)
    hopeless = b"this is not a header\r\nFrom: trac@example.org\r\n\r\nbody\r\n"
    from .flow import submit

    reply = await submit(port_of(relay), hopeless)
    (received,) = await barrier(port_of(relay), upstream)
    # all of it is body; relaying needs a From:, made of the envelope sender (as Postfix)
    assert received.content == b"From: <trac@example.org>\r\n\r\n" + hopeless
    queue_id = reply.rsplit(" ", 1)[1]
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert any(
        line.startswith(f"{queue_id}: ") and "not a header field" in line for line in warnings
    )


async def test_a_deeply_nested_message_is_captured_not_refused(
    make_config, start_relay, tmp_path, caplog
):
    relay = await start_relay(make_config(web={"enabled": False}))
    deep = b"Subject: deep\r\nMIME-Version: 1.0\r\n" + nested(5000)
    from .flow import submit

    reply = await submit(port_of(relay), deep)
    assert reply.startswith("2.0.0")
    queue_id = reply.rsplit(" ", 1)[1]
    (stored,) = (relay.capture.root / "new").iterdir()
    assert stored.read_bytes() == deep
    # indexed by its header (found by subject), with a line saying the body was not read
    assert relay.capture.matching("subject:deep", timezone="UTC") == [queue_id]
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert any(line.startswith(f"{queue_id}: capture index: header only") for line in warnings)


async def test_a_deeply_nested_message_passes_the_filter_simulation_unchanged(
    relay_for, upstream, caplog
):
    # relay mode with per-recipient filters: the simulation reads the message through the
    # stdlib parser too, so it must bound the depth as capture does (and never answer 451)
    rules = Path(__file__).resolve().parents[2] / "rules" / "trac-own-changes.yaml"
    sets = [{"recipients": ["*"], "rules": str(rules), "params": {"username": "dev"}}]
    relay = await relay_for(upstream, filters={"sets": sets, "enforce": ["delete"]})
    deep = b"From: trac@example.org\r\nSubject: deep\r\nMIME-Version: 1.0\r\n" + nested(5000)
    from .flow import submit

    reply = await submit(port_of(relay), deep)
    (received,) = await barrier(port_of(relay), upstream)
    assert received.content == deep and received.recipients == ["dev@example.org"]
    queue_id = reply.rsplit(" ", 1)[1]
    assert f"{queue_id}: matched on the header only" in caplog.text
