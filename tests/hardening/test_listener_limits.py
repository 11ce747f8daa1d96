"""The listener's limits and envelope checks over real sockets (security reference C and D).

Each test asserts the exact reply class and that the upstream received nothing it should
not have: the relay delivers over one connection in arrival order, so a barrier message
sent after the attack proves that nothing the attack could have queued was delivered.
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import socket
import time

import aiosmtplib
import pytest
from helpers import port_of

from relay.config import RelayConfig
from relay.receive.options import TcpListener

from .flow import barrier, queued, submit, wait_for
from .misbehave import refuse
from .processes import memory_kib
from .wire import Wire, code

MESSAGE = b"From: trac@example.org\r\nTo: dev@example.org\r\nSubject: ok\r\n\r\nfine\r\n"


async def envelope(wire: Wire, sender: bytes = b"<trac@example.org>") -> None:
    await wire.greet()
    assert code(await wire.command(b"MAIL FROM:" + sender + b"\r\n")) == 250


def one_clean_line(reply: bytes) -> bool:
    """A reply that quotes a bad address still is one line of UTF-8 without control octets."""
    text = reply.decode("utf-8")  # raises on undecodable octets echoed back
    return text.endswith("\r\n") and text[:-2].isprintable()


async def send_data(wire: Wire, data: bytes) -> bytes:
    assert code(await wire.command(b"DATA\r\n")) == 354
    return await wire.command(data)


# --- C.15 who may relay -------------------------------------------------------------------


def test_default_listener_and_networks_are_loopback_only():
    config = RelayConfig()
    assert config.listen == (TcpListener("127.0.0.1", 2525),)
    assert {str(network) for network in config.allowed_networks} == {"127.0.0.0/8", "::1/128"}


async def test_client_outside_allowed_networks_gets_554_and_relays_nothing(relay_for, upstream):
    relay = await relay_for(upstream, allowed_networks=["127.0.0.2/32"])
    outsider = await Wire.open(port_of(relay), source="127.0.0.1")
    assert (await outsider.reply()).startswith(b"554 5.7.1")
    await outsider.send(b"EHLO x\r\nMAIL FROM:<a@example.org>\r\nRCPT TO:<b@gmail.com>\r\n")
    assert await outsider.replies_until_closed() == []  # closed, no command was read
    insider = await Wire.open(port_of(relay), source="127.0.0.2")
    await envelope(insider)
    assert code(await insider.command(b"RCPT TO:<dev@example.org>\r\n")) == 250
    assert code(await send_data(insider, MESSAGE + b".\r\n")) == 250
    (received,) = await wait_for(lambda: upstream.messages)
    assert received.recipients == ["dev@example.org"]
    await asyncio.sleep(0.3)
    assert len(upstream.messages) == 1


# --- C.18 CR, LF and other junk in envelope addresses ------------------------------------

BAD_RECIPIENTS = {
    "nul": (b"RCPT TO:<a\x00b@example.org>", 553),
    "bare-cr": (b"RCPT TO:<dev@example.org\rRCPT TO:<evil@attacker.test>>", 501),
    "del": (b"RCPT TO:<a\x7fb@example.org>", 553),
    "space-in-quotes": (b'RCPT TO:<"x y"@example.org>', 553),
    "long-local-part": (b"RCPT TO:<" + b"x" * 300 + b"@example.org>", 553),
    "invalid-utf8": (b"RCPT TO:<\xff\xfe@example.org>", 553),
    "unicode-space": ("RCPT TO:<dev\u00a0ops@example.org>".encode(), 553),
    "zero-width-space": ("RCPT TO:<de\u200bv@example.org>".encode(), 553),
    "dsn-parameter": (b"RCPT TO:<dev@example.org> NOTIFY=NEVER", 555),
}
BAD_SENDERS = {
    "nul": (b"MAIL FROM:<a\x00b@example.org>", 553),
    "bare-cr": (b"MAIL FROM:<a@example.org\rRCPT TO:<evil@attacker.test>>", 501),
    "invalid-utf8": (b"MAIL FROM:<\xff@example.org>", 553),
    "long": (b"MAIL FROM:<" + b"x" * 300 + b"@example.org>", 553),
    "binarymime": (b"MAIL FROM:<trac@example.org> BODY=BINARYMIME", 501),
}


@pytest.mark.parametrize(("command", "expected"), BAD_RECIPIENTS.values(), ids=BAD_RECIPIENTS)
async def test_malformed_recipient_is_refused_and_never_reaches_upstream(
    relay_for, upstream, command, expected
):
    relay = await relay_for(upstream)
    wire = await Wire.open(port_of(relay))
    await envelope(wire)
    reply = await wire.command(command + b"\r\n")
    assert code(reply) == expected and one_clean_line(reply)
    assert code(await wire.command(b"RCPT TO:<ops@example.org>\r\n")) == 250
    assert code(await send_data(wire, MESSAGE + b".\r\n")) == 250
    await wire.close()
    (received,) = await barrier(port_of(relay), upstream)
    assert received.recipients == ["ops@example.org"]


@pytest.mark.parametrize(("command", "expected"), BAD_SENDERS.values(), ids=BAD_SENDERS)
async def test_malformed_sender_is_refused_and_never_reaches_upstream(
    relay_for, upstream, command, expected
):
    relay = await relay_for(upstream)
    wire = await Wire.open(port_of(relay))
    await wire.greet()
    reply = await wire.command(command + b"\r\n")
    assert code(reply) == expected and one_clean_line(reply)
    assert code(await wire.command(b"RCPT TO:<ops@example.org>\r\n")) == 503  # no sender
    await wire.close()
    assert await barrier(port_of(relay), upstream) == []


# --- D.24-D.28 lines, commands and sizes ------------------------------------------------


async def test_body_line_over_998_octets_is_500_and_the_session_goes_on(relay_for, upstream):
    relay = await relay_for(upstream)
    wire = await Wire.open(port_of(relay))
    await envelope(wire)
    assert code(await wire.command(b"RCPT TO:<dev@example.org>\r\n")) == 250
    reply = await send_data(wire, b"Subject: long\r\n\r\n" + b"x" * 1200 + b"\r\n.\r\n")
    assert reply.startswith(b"500 Line too long")
    assert code(await wire.command(b"MAIL FROM:<trac@example.org>\r\n")) == 250
    assert code(await wire.command(b"RCPT TO:<ops@example.org>\r\n")) == 250
    assert code(await send_data(wire, MESSAGE + b".\r\n")) == 250
    (received,) = await barrier(port_of(relay), upstream)
    assert received.recipients == ["ops@example.org"]


async def test_command_over_512_octets_is_500_and_the_next_command_works(relay_for, upstream):
    relay = await relay_for(upstream)
    wire = await Wire.open(port_of(relay))
    await wire.greet()
    reply = await wire.command(b"MAIL FROM:<" + b"a" * 3000 + b"@example.org>\r\n")
    assert reply.startswith(b"500 Command line too long")
    assert code(await wire.command(b"MAIL FROM:<trac@example.org>\r\n")) == 250
    assert code(await wire.command(b"RSET\r\n")) == 250
    assert await barrier(port_of(relay), upstream) == []


async def test_declared_size_over_the_limit_is_552_at_mail(relay_for, upstream):
    relay = await relay_for(upstream, limits={"max_message_size": 10_000})
    wire = await Wire.open(port_of(relay))
    await wire.reply()
    await wire.send(b"EHLO x\r\n")
    assert b"250-SIZE 10000\r\n" in await wire.lines()
    reply = await wire.command(b"MAIL FROM:<trac@example.org> SIZE=999999999\r\n")
    assert code(reply) == 552
    assert code(await wire.command(b"RCPT TO:<dev@example.org>\r\n")) == 503  # no MAIL taken
    assert await barrier(port_of(relay), upstream) == []


async def test_data_over_the_limit_is_552_after_the_final_dot(relay_for, upstream):
    relay = await relay_for(upstream, limits={"max_message_size": 10_000})
    wire = await Wire.open(port_of(relay))
    await envelope(wire)
    assert code(await wire.command(b"RCPT TO:<dev@example.org>\r\n")) == 250
    reply = await send_data(wire, b"Subject: big\r\n\r\n" + (b"y" * 76 + b"\r\n") * 200 + b".\r\n")
    assert code(reply) == 552
    assert queued(relay) == {}
    assert await barrier(port_of(relay), upstream) == []


async def stream_data(port: int, line: bytes, total: int) -> bytes:
    """Open a transaction, stream ``total`` octets of ``line`` repeated and the final dot;
    return the reply (``b""`` if the server hung up instead).
    """
    wire = await Wire.open(port)
    await envelope(wire)
    assert code(await wire.command(b"RCPT TO:<dev@example.org>\r\n")) == 250
    assert code(await wire.command(b"DATA\r\n")) == 354
    chunk = line * max(1, 2**16 // len(line))
    try:
        for _ in range(total // len(chunk)):
            await wire.send(chunk)
        await wire.send(b"\r\n.\r\n")
        return await wire.reply(timeout=60)
    except ConnectionError:
        return b""
    finally:
        await wire.close()


#: Peak RSS growth allowed while 40 MB stream past a 1 MB limit (the limit plus slack).
STREAM_BUDGET_KIB = 8 * 1024


async def test_oversize_data_streams_past_without_being_buffered(relay_process):
    relay = relay_process(limits={"max_message_size": 2**20})
    before = memory_kib(relay.pid)
    reply = await stream_data(relay.port, b"z" * 76 + b"\r\n", 40 * 2**20)
    assert code(reply) == 552
    assert memory_kib(relay.pid) - before < STREAM_BUDGET_KIB


@pytest.mark.parametrize("line", [b"z" * 4096, b"z" * 76 + b"\n"], ids=["no-line-ends", "bare-lf"])
async def test_oversize_data_without_crlf_is_cut_off_not_buffered(relay_process, line):
    # aiosmtpd alone keeps every fragment of a DATA line until its CRLF (40 MB in, 40 MB
    # more RSS); the listener hangs up once a "line" outgrows a whole message
    relay = relay_process(limits={"max_message_size": 2**20})
    before = memory_kib(relay.pid)
    reply = await stream_data(relay.port, line, 40 * 2**20)
    assert reply in (b"", b"421 4.7.0 Line too long; closing connection\r\n")
    assert memory_kib(relay.pid) - before < STREAM_BUDGET_KIB
    assert "sent a line longer than a message" in relay.log.read_text()


# --- C.20 recipients ----------------------------------------------------------------------


async def test_recipient_over_the_cap_gets_452_and_is_not_delivered(relay_for, upstream):
    relay = await relay_for(upstream, limits={"max_recipients": 3})
    wire = await Wire.open(port_of(relay))
    await envelope(wire)
    for name in (b"r0", b"r1", b"r2"):
        assert code(await wire.command(b"RCPT TO:<" + name + b"@example.org>\r\n")) == 250
    assert (await wire.command(b"RCPT TO:<r3@example.org>\r\n")).startswith(b"452 4.5.3")
    assert code(await send_data(wire, MESSAGE + b".\r\n")) == 250
    (received,) = await barrier(port_of(relay), upstream)
    assert received.recipients == ["r0@example.org", "r1@example.org", "r2@example.org"]


# --- D.30 idle and slow clients ------------------------------------------------------------

TIMEOUT = 1.5  # limits.timeout for these tests (the minimum is 1 s)


async def drip(wire: Wire, data: bytes, every: float) -> None:
    """Write ``data`` a piece at a time until the server hangs up."""
    try:
        for index in range(len(data)):
            await wire.send(data[index : index + 1])
            await asyncio.sleep(every)
    except ConnectionError:
        return


async def closed_after(wire: Wire, started: float) -> tuple[float, list[bytes]]:
    """Seconds from ``started`` until the server closed ``wire``, and what it said."""
    said = await wire.replies_until_closed(timeout=TIMEOUT + 5)
    return time.monotonic() - started, said


async def test_idle_and_slow_drip_clients_are_closed_and_others_are_served(relay_for, upstream):
    relay = await relay_for(upstream, limits={"timeout": TIMEOUT})
    port = port_of(relay)
    idle = await Wire.open(port)
    assert code(await idle.reply()) == 220
    command = await Wire.open(port)
    await command.greet()
    data = await Wire.open(port)
    await envelope(data)
    assert code(await data.command(b"RCPT TO:<dev@example.org>\r\n")) == 250
    assert code(await data.command(b"DATA\r\n")) == 354
    started = time.monotonic()
    drips = [
        asyncio.create_task(drip(command, b"MAIL FROM:<slow@example.org>\r\n" * 10, 0.2)),
        asyncio.create_task(drip(data, b"Subject: slow\r\n\r\n" + b"0123456789\r\n" * 50, 0.02)),
    ]
    await asyncio.sleep(0.3)
    served = time.monotonic()
    reply = await submit(port, MESSAGE)  # a normal client is not held up by the slow ones
    assert reply.startswith("2.0.0") and time.monotonic() - served < 1.0
    for wire in (idle, command, data):
        seconds, said = await closed_after(wire, started)
        assert said == [] and TIMEOUT - 0.3 < seconds < TIMEOUT + 1.5
    await asyncio.gather(*drips)
    (received,) = await barrier(port, upstream)
    assert received.content == MESSAGE


# --- D.31 connection floods ----------------------------------------------------------------


async def test_connection_flood_beyond_the_cap_gets_421_and_recovers(relay_for, upstream):
    reap = 3.0  # long enough for the whole flood to arrive before the first idle one is reaped
    limits = {"max_connections": 20, "max_connections_per_client": 20, "timeout": reap}
    relay = await relay_for(upstream, limits=limits)  # one address may fill the whole cap
    port = port_of(relay)
    flood, greetings = [], []
    for _ in range(10):  # 500 connections, 50 at a time (a larger burst overflows the
        wave = await asyncio.gather(*(Wire.open(port) for _ in range(50)))  # accept backlog)
        greetings += await asyncio.gather(*(wire.reply() for wire in wave))
        flood += wave
    codes = [code(line) for line in greetings]
    assert (codes.count(220), codes.count(421)) == (20, 480)
    assert all(line.startswith(b"421 4.7.0") for line in greetings if code(line) == 421)
    with pytest.raises(aiosmtplib.SMTPConnectResponseError) as refused:
        await submit(port, MESSAGE)
    assert refused.value.code == 421
    await asyncio.sleep(reap + 0.5)  # the 20 idle ones are reaped by the timeout
    assert (await submit(port, MESSAGE)).startswith("2.0.0")
    for wire in flood:
        await wire.close()
    (received,) = await barrier(port, upstream)
    assert received.content == MESSAGE


# --- C.17 null sender ----------------------------------------------------------------------


async def test_null_sender_is_relayed_as_null_and_never_bounced_to(relay_for, upstream):
    upstream.rcpt_reply = refuse({"nobody": "550 5.1.1 no such user"})
    relay = await relay_for(upstream)
    wire = await Wire.open(port_of(relay))
    await envelope(wire, b"<>")
    assert code(await wire.command(b"RCPT TO:<nobody@example.org>\r\n")) == 250
    assert code(await wire.command(b"RCPT TO:<dev@example.org>\r\n")) == 250
    assert code(await send_data(wire, MESSAGE + b".\r\n")) == 250
    (received,) = await barrier(port_of(relay), upstream)
    assert received.sender == "<>" and received.recipients == ["dev@example.org"]
    (failed,) = queued(relay)["failed"]
    state = relay.manager.spool.read_state(failed)
    assert state.failed == ("nobody@example.org",) and state.done == ("dev@example.org",)
    # no delivery status notification was generated: the barrier was the only other message
    assert len(upstream.messages) == 2


# --- C.22 / C.23 8-bit and SMTPUTF8 -------------------------------------------------------

EIGHT_BIT = (
    "From: trac@example.org\r\nTo: dev@example.org\r\nSubject: Grüße\r\n"
    "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n"
    "Content-Transfer-Encoding: 8bit\r\n\r\nGrüße aus Köln\r\n"
).encode()


async def test_8bit_data_without_body_parameter_goes_out_with_8bitmime(relay_for, upstream):
    relay = await relay_for(upstream)
    wire = await Wire.open(port_of(relay))
    await envelope(wire)  # no BODY=8BITMIME
    assert code(await wire.command(b"RCPT TO:<dev@example.org>\r\n")) == 250
    assert code(await send_data(wire, EIGHT_BIT + b".\r\n")) == 250
    (received,) = await barrier(port_of(relay), upstream)
    assert received.content == EIGHT_BIT
    assert "BODY=8BITMIME" in received.mail_options


async def test_8bit_data_to_a_7bit_upstream_is_downgraded_not_pushed(relay_for, upstream):
    upstream.hide = ("8BITMIME",)
    relay = await relay_for(upstream)
    await submit(port_of(relay), EIGHT_BIT)
    (received,) = await barrier(port_of(relay), upstream)
    assert received.content.isascii() and "BODY=8BITMIME" not in received.mail_options
    body = email.message_from_bytes(received.content, policy=email.policy.default)
    assert body.get_content().rstrip() == "Grüße aus Köln" and body["Subject"] == "Grüße"


@pytest.mark.parametrize("parameter", [b" SMTPUTF8", b""], ids=["declared", "undeclared"])
async def test_utf8_addresses_are_delivered_with_smtputf8(relay_for, upstream, parameter):
    # The listener accepts UTF-8 addresses with or without the parameter (enable_SMTPUTF8,
    # as aiosmtpd's Controller does); upstream they always go with SMTPUTF8 (RFC 6531).
    relay = await relay_for(upstream)
    wire = await Wire.open(port_of(relay))
    await envelope(wire, "<café@example.org>".encode() + parameter)
    assert code(await wire.command("RCPT TO:<zoë@example.org>\r\n".encode())) == 250
    assert code(await send_data(wire, MESSAGE + b".\r\n")) == 250
    (received,) = await barrier(port_of(relay), upstream)
    assert (received.sender, received.recipients) == ("café@example.org", ["zoë@example.org"])
    assert "SMTPUTF8" in received.mail_options


async def test_utf8_addresses_to_an_upstream_without_smtputf8_bounce_once(relay_for, upstream):
    upstream.hide = ("SMTPUTF8",)
    relay = await relay_for(upstream)
    wire = await Wire.open(port_of(relay))
    await envelope(wire, "<café@example.org> SMTPUTF8".encode())
    assert code(await wire.command(b"RCPT TO:<dev@example.org>\r\n")) == 250
    assert code(await send_data(wire, MESSAGE + b".\r\n")) == 250
    assert await barrier(port_of(relay), upstream) == []
    (failed,) = queued(relay)["failed"]
    state = relay.manager.spool.read_state(failed)
    assert state.attempts == 1 and state.last_reply.startswith("553 5.6.7")


# --- D.32 / D.33 garbage and greeting latency ---------------------------------------------


async def test_unknown_commands_end_the_session_after_five(relay_for, upstream):
    relay = await relay_for(upstream)
    wire = await Wire.open(port_of(relay))
    await wire.greet()
    await wire.send(b"".join(b"XYZZY%d\r\n" % n for n in range(6)))
    said = await wire.replies_until_closed()
    assert [code(line) for line in said] == [500] * 4 + [502]  # aiosmtpd's BOGUS_LIMIT
    assert said[-1].startswith(b"502 5.5.1")


async def test_an_http_request_to_the_smtp_port_ends_fast(relay_for, upstream):
    relay = await relay_for(upstream)
    wire = await Wire.open(port_of(relay))
    assert code(await wire.reply()) == 220
    started = time.monotonic()
    await wire.send(
        b"GET / HTTP/1.1\r\nHost: x\r\nUser-Agent: probe\r\nAccept: */*\r\n"
        b"Connection: close\r\n\r\n"
    )
    said = await wire.replies_until_closed()
    assert said[-1].startswith(b"502 5.5.1") and time.monotonic() - started < 1.0
    assert await barrier(port_of(relay), upstream) == []


async def test_greeting_never_waits_for_dns(relay_for, upstream, monkeypatch):
    relay = await relay_for(upstream)

    def slow_getfqdn(name: str = "") -> str:
        time.sleep(3)
        return "slow.example"

    monkeypatch.setattr(socket, "getfqdn", slow_getfqdn)
    started = time.monotonic()
    wire = await Wire.open(port_of(relay))
    assert code(await wire.reply()) == 220
    assert time.monotonic() - started < 0.5  # the hostname comes from the config
    await wire.close()
