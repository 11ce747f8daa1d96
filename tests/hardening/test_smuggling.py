"""SMTP smuggling (security reference A.1-A.6) over a real socket.

Policy: only ``<CR><LF>.<CR><LF>`` ends DATA (aiosmtpd >= 1.4.5), and a message with a bare
CR or bare LF anywhere in it is refused *after* the final dot with ``550 5.6.0`` (Postfix's
``smtpd_forbid_bare_newline = reject``, with our own enhanced code), so no end-of-data
variant yields a second envelope and no variant is even stored. The ``sendmail`` path is the
legitimate LF source and turns every line end into CRLF before it submits (Trac writes
``os.linesep``): tests/integration/test_sendmail.py covers it (A.6), and the outbound safety
net (A.3) is in test_upstream_faults.py.

Capture mode stores such a message instead (line ends repaired, a note saying relay mode
would refuse it with ``550 5.6.0``), but frames DATA the same way: a fake end of data is
text inside the one message, never a second envelope; an over-long line stays a refusal.
"""

from __future__ import annotations

import pytest
from helpers import port_of as port

from relay.capture.meta import CaptureMeta

from .flow import barrier, queued
from .wire import Wire, code

HEAD = b"From: trac@example.org\r\nTo: dev@example.org\r\nSubject: hello\r\n\r\nhello"
SMUGGLED = (
    b"MAIL FROM:<evil@attacker.test>\r\n"
    b"RCPT TO:<victim@example.org>\r\n"
    b"DATA\r\n"
    b"From: evil@attacker.test\r\nSubject: smuggled\r\n\r\nsmuggled\r\n"
)
#: Every fake end-of-data of hannob/smtpsmug and the SEC Consult paper.
BARE_VARIANTS = {
    "lf-dot-crlf": b"\n.\r\n",
    "lf-dot-lf": b"\n.\n",
    "cr-dot-cr": b"\r.\r",
    "cr-dot-lf": b"\r.\n",
    "lf-dot-cr": b"\n.\r",
    "crlf-dot-lf": b"\r\n.\n",
    "cr-dot-crlf": b"\r.\r\n",
    "crlf-dot-cr": b"\r\n.\r",
}
ENVELOPE = b"EHLO attacker.test\r\nMAIL FROM:<trac@example.org>\r\nRCPT TO:<dev@example.org>\r\n"


@pytest.fixture
async def relay(relay_for, upstream):
    relay = await relay_for(upstream)
    relay.upstream = upstream
    return relay


async def transaction(relay, data: bytes) -> list[bytes]:
    """One session: envelope, DATA, ``data`` (which carries its own final dot), QUIT.

    Returns every reply line after the 354, up to the server closing the connection.
    """
    wire = await Wire.open(port(relay))
    assert code(await wire.reply()) == 220
    for line in ENVELOPE.split(b"\r\n")[:-1]:
        assert code(await wire.command(line + b"\r\n")) == 250
    assert code(await wire.command(b"DATA\r\n")) == 354
    await wire.send(data + b"QUIT\r\n")
    replies = await wire.replies_until_closed()
    await wire.close()
    return replies


@pytest.mark.parametrize("end", BARE_VARIANTS.values(), ids=BARE_VARIANTS.keys())
async def test_fake_end_of_data_gives_one_refusal_and_no_envelope(relay, end):
    replies = await transaction(relay, HEAD + end + SMUGGLED + b".\r\n")
    assert [line[:9] for line in replies] == [b"550 5.6.0", b"221 Bye\r\n"]
    assert queued(relay) == {}
    assert await barrier(port(relay), relay.upstream) == []


async def test_nul_before_the_dot_is_one_message_with_the_literal_text(relay):
    # "\r\n\x00.\r\n" has no bare CR or LF: it is text, not an end of data (smtpsmug's
    # last variant); the only message is the real one, smuggled lines included as text.
    replies = await transaction(relay, HEAD + b"\r\n\x00.\r\n" + SMUGGLED + b".\r\n")
    assert [line[:3] for line in replies] == [b"250", b"221"]
    (message,) = await barrier(port(relay), relay.upstream)
    assert (message.sender, message.recipients) == ("trac@example.org", ["dev@example.org"])
    assert b"MAIL FROM:<evil@attacker.test>" in message.content


async def test_lf_only_message_is_refused_not_split(relay):
    body = b"Subject: lf only\n\n" + b"line\n" * 20
    replies = await transaction(relay, body + SMUGGLED.replace(b"\r\n", b"\n") + b"\r\n.\r\n")
    assert [line[:9] for line in replies] == [b"550 5.6.0", b"221 Bye\r\n"]
    assert await barrier(port(relay), relay.upstream) == []


async def test_lf_only_message_longer_than_a_line_is_line_too_long(relay):
    # aiosmtpd frames DATA on CRLF: 2 KB of LF-only text is one over-long "line" (A.25)
    replies = await transaction(relay, b"Subject: x\n\n" + b"line\n" * 400 + b"\r\n.\r\n")
    assert [line[:3] for line in replies] == [b"500", b"221"]
    assert b"Line too long" in replies[0]
    assert await barrier(port(relay), relay.upstream) == []


async def test_pipelined_transactions_get_one_reply_each_and_stay_apart(relay):
    second = ENVELOPE.replace(b"EHLO attacker.test\r\n", b"").replace(b"dev@", b"ops@")
    wire = await Wire.open(port(relay))
    assert code(await wire.reply()) == 220
    await wire.send(
        ENVELOPE
        + b"DATA\r\n"
        + b"Subject: first\r\n\r\nfirst\r\n.\r\n"
        + second
        + b"DATA\r\n"
        + b"Subject: second\r\n\r\nsecond\r\n.\r\n"
        + b"QUIT\r\n"
    )
    replies = [line[:3] for line in await wire.replies_until_closed() if line[3:4] != b"-"]
    await wire.close()
    transaction = [b"250", b"250", b"354", b"250"]  # MAIL, RCPT, DATA, the final dot
    assert replies == [b"250", *transaction, *transaction, b"221"]  # EHLO first
    first, other = await barrier(port(relay), relay.upstream)
    assert (first.recipients, other.recipients) == (["dev@example.org"], ["ops@example.org"])
    assert b"second" not in first.content and b"first" not in other.content


async def test_smuggling_attempt_inside_pipelining_still_yields_no_second_envelope(relay):
    wire = await Wire.open(port(relay))
    assert code(await wire.reply()) == 220
    await wire.send(ENVELOPE + b"DATA\r\n" + HEAD + b"\n.\r\n" + SMUGGLED + b".\r\nQUIT\r\n")
    replies = [line[:3] for line in await wire.replies_until_closed() if line[3:4] != b"-"]
    await wire.close()
    assert replies == [b"250", b"250", b"250", b"354", b"550", b"221"]
    assert await barrier(port(relay), relay.upstream) == []


async def test_bare_lf_ends_a_command_and_is_documented_as_accepted(relay):
    # A.5: aiosmtpd's command reader splits on LF, so "RCPT TO:<b>\n" is a command; the
    # relay accepts it (no strict mode). It cannot smuggle: DATA content is framed on CRLF.
    wire = await Wire.open(port(relay))
    await wire.greet()
    assert code(await wire.command(b"MAIL FROM:<trac@example.org>\n")) == 250
    assert code(await wire.command(b"RCPT TO:<dev@example.org>\n")) == 250
    assert code(await wire.command(b"DATA\n")) == 354
    assert code(await wire.command(b"Subject: lf commands\r\n\r\nok\r\n.\r\n")) == 250
    await wire.close()
    (message,) = await barrier(port(relay), relay.upstream)
    assert message.recipients == ["dev@example.org"]


@pytest.fixture
async def capture(make_config, start_relay):
    return await start_relay(make_config(web={"enabled": False}))


def stored_in(relay) -> list[tuple[bytes, CaptureMeta]]:
    """Every captured message with its metadata."""
    store = relay.capture
    return [store.read(meta.stem) for meta in sorted((store.root / "meta").glob("*.json"))]


@pytest.mark.parametrize("end", BARE_VARIANTS.values(), ids=BARE_VARIANTS.keys())
async def test_capture_mode_keeps_a_fake_end_of_data_as_text_of_one_message(capture, end):
    replies = await transaction(capture, HEAD + end + SMUGGLED + b".\r\n")
    assert [line[:3] for line in replies] == [b"250", b"221"]
    ((content, meta),) = stored_in(capture)
    assert meta.sender == "trac@example.org" and meta.recipients == ("dev@example.org",)
    assert b"MAIL FROM:<evil@attacker.test>" in content  # text, not a second envelope
    assert [note["reply"][:9] for note in meta.relay_refusals] == ["550 5.6.0"]


async def test_capture_mode_still_refuses_an_lf_only_line_longer_than_a_line(capture):
    replies = await transaction(capture, b"Subject: x\n\n" + b"line\n" * 400 + b"\r\n.\r\n")
    assert [line[:3] for line in replies] == [b"500", b"221"]
    assert stored_in(capture) == []
