"""The listener: who may connect, limits, framing, and 250 only once the message is stored."""

from __future__ import annotations

import asyncio
import base64
import mailbox
import os
import random
import shutil
import socket
from collections import Counter
from pathlib import Path

import aiosmtplib
import pytest
from helpers import FIXTURES, port_of

from relay.queue.spool import QueueState, Spool

TRAC = sorted((FIXTURES / "trac").glob("*/*.eml"))


async def raw_session(port: int, chunks: list[bytes], extra: int = 0) -> list[bytes]:
    """Send each chunk and read one (possibly multi-line) reply to it, then ``extra`` more."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)

    async def reply() -> bytes:
        lines = [await reader.readline()]
        while lines[-1][3:4] == b"-":
            lines.append(await reader.readline())
        return lines[-1]

    replies = [await reply()]
    for chunk in chunks:
        writer.write(chunk)
        replies.append(await reply())
    for _ in range(extra):
        replies.append(await asyncio.wait_for(reply(), 5))
    writer.close()
    return replies


def captured(path: Path) -> list[bytes]:
    box = mailbox.Maildir(path, factory=None, create=False)
    return [box.get_bytes(key) for key in box.iterkeys()]


@pytest.mark.parametrize("eml", TRAC, ids=lambda path: f"{path.parent.name}/{path.name}")
async def test_trac_message_is_captured_byte_for_byte(eml, make_config, start_relay, tmp_path):
    relay = await start_relay(make_config())
    data = eml.read_bytes()
    async with aiosmtplib.SMTP(hostname="127.0.0.1", port=port_of(relay)) as client:
        await client.sendmail("trac@example.org", ["alice@example.org"], data)
    assert captured(tmp_path / "mail") == [data]


async def test_capture_mode_is_the_default(tmp_path, monkeypatch, start_relay):
    from relay.config import RelayConfig
    from relay.receive.options import TcpListener

    monkeypatch.chdir(tmp_path)
    relay = await start_relay(RelayConfig(listen=(TcpListener("127.0.0.1", 0),)))
    assert relay.manager is None
    async with aiosmtplib.SMTP(hostname="127.0.0.1", port=port_of(relay)) as client:
        await client.sendmail("", ["alice@example.org"], b"Subject: null sender\r\n\r\nhi\r\n")
    (message,) = captured(tmp_path / "mail")
    assert message.endswith(b"hi\r\n")


async def test_client_outside_allowed_networks_is_refused(make_config, start_relay, tmp_path):
    relay = await start_relay(make_config(allowed_networks=["10.0.0.0/8"]))
    reader, writer = await asyncio.open_connection("127.0.0.1", port_of(relay))
    greeting = await reader.readline()
    assert greeting.startswith(b"554 5.7.1")
    assert await reader.read() == b""  # closed
    writer.close()
    assert captured(tmp_path / "mail") == []


async def test_ipv6_listener_and_network(make_config, start_relay, tmp_path):
    if not socket.has_ipv6:
        pytest.skip("no IPv6 on this machine")
    relay = await start_relay(make_config(listen=["[::1]:0"]))
    port = int(relay.bound[0].rsplit(":", 1)[1])
    async with aiosmtplib.SMTP(hostname="::1", port=port) as client:
        await client.sendmail("a@example.org", ["b@example.org"], b"Subject: v6\r\n\r\nx\r\n")
    assert len(captured(tmp_path / "mail")) == 1


async def test_too_many_recipients_get_452(make_config, start_relay):
    relay = await start_relay(make_config(limits={"max_recipients": 3}))
    async with aiosmtplib.SMTP(hostname="127.0.0.1", port=port_of(relay)) as client:
        await client.mail("a@example.org")
        for n in range(3):
            await client.rcpt(f"r{n}@example.org")
        with pytest.raises(aiosmtplib.SMTPRecipientRefused) as refused:
            await client.rcpt("r3@example.org")
    assert refused.value.code == 452 and "4.5.3" in refused.value.message


async def test_a_thousand_recipients_are_accepted_by_default(make_config, start_relay, tmp_path):
    relay = await start_relay(make_config())
    recipients = [f"user{n}@example.org" for n in range(1000)]
    async with aiosmtplib.SMTP(hostname="127.0.0.1", port=port_of(relay)) as client:
        errors, _ = await client.sendmail(
            "a@example.org", recipients, b"Subject: many\r\n\r\nx\r\n"
        )
    assert errors == {}


async def test_message_over_the_size_limit_gets_552(make_config, start_relay, tmp_path):
    relay = await start_relay(make_config(limits={"max_message_size": 2048}))
    async with aiosmtplib.SMTP(hostname="127.0.0.1", port=port_of(relay)) as client:
        assert "SIZE 2048" in (await client.ehlo()).message
        with pytest.raises(aiosmtplib.SMTPResponseException) as refused:
            await client.sendmail(
                "a@example.org", ["b@example.org"], b"Subject: big\r\n\r\n" + b"x" * 70 * 60
            )
    assert refused.value.code == 552
    assert captured(tmp_path / "mail") == []


async def test_bare_lf_in_data_is_refused_after_the_final_dot(make_config, start_relay, tmp_path):
    # relay mode (capture mode keeps it with a note: test_capture_leniency.py)
    relay = await start_relay(make_config(upstream={"host": "127.0.0.1", "port": 9, "tls": "none"}))
    replies = await raw_session(
        port_of(relay),
        [
            b"EHLO t\r\n",
            b"MAIL FROM:<a@example.org>\r\n",
            b"RCPT TO:<b@example.org>\r\n",
            b"DATA\r\n",
            b"Subject: x\r\n\r\nbody\nMAIL FROM:<evil@example.org>\r\n.\r\n",
        ],
    )
    assert replies[-1].startswith(b"550 5.6.0")
    assert Spool(tmp_path / "queue").ids(QueueState.INCOMING) == []


async def test_local_trouble_answers_451_and_keeps_running(
    make_config, start_relay, tmp_path, caplog
):
    relay = await start_relay(make_config(upstream={"host": "127.0.0.1", "port": 9, "tls": "none"}))
    incoming = tmp_path / "queue" / QueueState.INCOMING.value
    shutil.rmtree(incoming)
    incoming.write_text("not a directory")  # every write into incoming/ now fails, even as root
    async with aiosmtplib.SMTP(hostname="127.0.0.1", port=port_of(relay)) as client:
        with pytest.raises(aiosmtplib.SMTPResponseException) as refused:
            await client.sendmail("a@example.org", ["b@example.org"], b"Subject: x\r\n\r\nx\r\n")
        assert refused.value.code == 451 and refused.value.message.startswith("4.3.0")
        assert "Traceback" not in refused.value.message
        incoming.unlink()
        incoming.mkdir()
        await client.rset()
        _, reply = await client.sendmail(
            "a@example.org", ["b@example.org"], b"Subject: x\r\n\r\nx\r\n"
        )
    assert reply.startswith("2.0.0")
    assert "could not store a message" in caplog.text


async def test_unix_socket_listener_with_mode(make_config, start_relay, tmp_path):
    path = tmp_path / "run" / "smtp.sock"
    relay = await start_relay(make_config(listen=[{"unix": str(path), "mode": "0600"}]))
    assert relay.bound == [f"unix:{path}"]
    assert oct(os.stat(path).st_mode & 0o777) == "0o600"
    async with aiosmtplib.SMTP(socket_path=str(path), hostname="localhost") as client:
        await client.sendmail("a@example.org", ["b@example.org"], b"Subject: unix\r\n\r\nx\r\n")
    assert len(captured(tmp_path / "mail")) == 1


async def test_connections_beyond_the_cap_get_421(make_config, start_relay):
    limits = {"max_connections": 2, "max_connections_per_client": 2}
    relay = await start_relay(make_config(limits=limits))
    held = [await asyncio.open_connection("127.0.0.1", port_of(relay)) for _ in range(2)]
    for reader, _ in held:
        assert (await reader.readline()).startswith(b"220")
    reader, writer = await asyncio.open_connection("127.0.0.1", port_of(relay))
    assert (await reader.readline()).startswith(b"421 4.7.0")
    for _, held_writer in [*held, (reader, writer)]:
        held_writer.close()


async def test_lf_in_an_address_cannot_inject_a_command(make_config, start_relay):
    relay = await start_relay(make_config())
    replies = await raw_session(
        port_of(relay),
        [b"EHLO t\r\n", b"MAIL FROM:<a@example.org>\r\n", b"RCPT TO:<b@example.org\nDATA>\r\n"],
        extra=1,
    )
    # the LF ends the command: the address is b@example.org, and "DATA>" is not DATA
    assert replies[-2].startswith(b"250") and replies[-1].startswith(b"500")


@pytest.mark.parametrize("address", [b"0@", b"<\\@[>"])
async def test_an_address_the_email_parser_trips_on_gets_a_syntax_error(
    make_config, start_relay, caplog, address
):
    """The stdlib parser raises IndexError or AttributeError on these: aiosmtpd turned that
    into a traceback in the log and a 451; the listener answers 553, and the session goes on."""
    relay = await start_relay(make_config())
    replies = await raw_session(
        port_of(relay),
        [b"EHLO t\r\n", b"MAIL FROM:" + address + b"\r\n", b"MAIL FROM:<a@example.org>\r\n"],
    )
    assert replies[2].startswith(b"553") and replies[3].startswith(b"250")
    assert "Traceback" not in caplog.text


# --- DATA read in whole buffers (relay/receive/data.py) ---

ATTACHMENT = base64.encodebytes(random.Random(7).randbytes(75_000)).replace(b"\n", b"\r\n")
#: About 100 KB in some 1,350 lines, a few of them dot-stuffed on the wire.
MESSAGE = (
    b"From: trac@example.org\r\nTo: dev@example.org\r\nSubject: big\r\n\r\n"
    + b".starts with a dot\r\n..two\r\n.\r\n"
    + ATTACHMENT
)


async def test_a_100_kb_message_is_read_in_a_few_calls_and_kept_exactly(
    make_config, start_relay, tmp_path, monkeypatch
):
    relay = await start_relay(make_config())
    calls: Counter[str] = Counter()
    for name in ("readuntil", "readexactly", "read", "readline"):
        method = getattr(asyncio.StreamReader, name)

        def counted(self, *args, _method=method, _name=name, **kwargs):
            calls[_name] += 1
            return _method(self, *args, **kwargs)

        monkeypatch.setattr(asyncio.StreamReader, name, counted)
    async with aiosmtplib.SMTP(hostname="127.0.0.1", port=port_of(relay)) as client:
        await client.sendmail("trac@example.org", ["dev@example.org"], MESSAGE)
    assert captured(tmp_path / "mail") == [MESSAGE]
    # EHLO, MAIL, RCPT, DATA, QUIT and the section: aiosmtpd alone made ~1,350 calls
    assert sum(calls.values()) < 20, calls
