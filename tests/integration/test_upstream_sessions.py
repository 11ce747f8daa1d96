"""Upstream sessions doing less per message: MAIL, RCPT and DATA pipelined (RFC 2920) to an
upstream that offers it, command by command to one that does not
(relay/deliver/pipelining.py); a session kept for the next batch (relay/deliver/reuse.py)."""

from __future__ import annotations

import asyncio
import re
import time

import aiosmtplib
import pytest
from aiosmtpd.smtp import SMTP
from helpers import eventually, port_of
from upstream import DROP, FakeUpstream

MESSAGE = (
    b"From: trac@example.org\r\nTo: a@example.org\r\nSubject: #1\r\n\r\n"
    b".a line with a dot\r\nHello\r\n"
)
RECIPIENTS = ["a@example.org", "b@example.org", "nobody@example.org", "c@example.org"]


class _Recording(SMTP):
    """aiosmtpd's protocol that writes down each chunk the client sends (when, what) and
    adds PIPELINING to its EHLO reply when the upstream offers it."""

    def __init__(self, upstream: RecordingUpstream, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.upstream = upstream

    def data_received(self, data: bytes) -> None:
        self.upstream.chunks.append((time.monotonic(), bytes(data)))
        super().data_received(data)

    async def push(self, status):
        if status == "250 HELP" and self.upstream.pipelining:
            await super().push("250-PIPELINING")
        await super().push(status)


class RecordingUpstream(FakeUpstream):
    """A FakeUpstream that records what arrives in which write, with or without PIPELINING."""

    def __init__(self, *, pipelining: bool, idle_timeout: float = 300, **kwargs) -> None:
        super().__init__(**kwargs)
        self.pipelining = pipelining
        self.idle_timeout = idle_timeout
        self.chunks: list[tuple[float, bytes]] = []

    def _protocol(self) -> SMTP:
        handler = super()._protocol().event_handler
        return _Recording(self, handler, **self._options(), timeout=self.idle_timeout)

    def writes_with(self, command: bytes) -> list[bytes]:
        return [chunk for _, chunk in self.chunks if command in chunk]


def refuse_nobody(address: str) -> str | None:
    return "550 5.1.1 no such user" if address.startswith("nobody@") else None


async def deliver(make_config, start_relay, upstream, caplog) -> str:
    relay = await start_relay(
        make_config(upstream={"host": "127.0.0.1", "port": upstream.port, "tls": "none"})
    )

    async with aiosmtplib.SMTP(hostname="127.0.0.1", port=port_of(relay)) as client:
        await client.sendmail("trac@example.org", RECIPIENTS, MESSAGE)
    (received,) = await eventually(lambda: upstream.messages)
    assert received.content == MESSAGE  # dot-stuffed on the wire, unstuffed upstream
    assert received.recipients == ["a@example.org", "b@example.org", "c@example.org"]
    await eventually(
        lambda: "nobody@example.org" in caplog.text and "status=bounced" in caplog.text
    )
    assert "to=<nobody@example.org>" in caplog.text and "550 5.1.1 no such user" in caplog.text
    return caplog.text


@pytest.mark.parametrize("pipelining", [True, False], ids=["offered", "not-offered"])
async def test_envelope_goes_in_one_write_only_when_pipelining_is_offered(
    make_config, start_relay, caplog, pipelining
):
    with RecordingUpstream(pipelining=pipelining, rcpt_reply=refuse_nobody) as upstream:
        await deliver(make_config, start_relay, upstream, caplog)
        commands = [b"MAIL FROM:<trac@example.org>", b"DATA\r\n"]
        commands += [b"RCPT TO:<%s>\r\n" % rcpt.encode() for rcpt in RECIPIENTS]
        one_write = [
            chunk
            for chunk in upstream.writes_with(b"MAIL FROM")
            if all(command in chunk for command in commands)
        ]
        assert bool(one_write) is pipelining
        if not pipelining:  # one write per command, each after the reply to the last
            assert len(upstream.writes_with(b"RCPT TO")) == len(RECIPIENTS)
        (message,) = upstream.writes_with(b"\r\n..a line with a dot\r\n")
        assert message.endswith(b"Hello\r\n.\r\n") and b"DATA" not in message


def refuse_all(address: str) -> str | None:
    return "550 5.1.1 no such user"


SCENARIOS = {
    "all-refused": {"rcpt_reply": refuse_all},
    "data-refused": {"data_reply": lambda envelope: "554 5.7.1 looks like spam"},
    "data-deferred": {"data_reply": lambda envelope: "451 4.3.0 try again later"},
    "dropped-at-the-dot": {"data_reply": lambda envelope: DROP},
}
STATUS = re.compile(r"to=<([^>]+)>.*?dsn=([\d.]+), status=(\w+)")


async def outcomes(make_config, start_relay, caplog, pipelining: bool, misbehaviour) -> set:
    caplog.clear()
    with RecordingUpstream(pipelining=pipelining, **misbehaviour) as upstream:
        relay = await start_relay(
            make_config(upstream={"host": "127.0.0.1", "port": upstream.port, "tls": "none"})
        )
        async with aiosmtplib.SMTP(hostname="127.0.0.1", port=port_of(relay)) as client:
            await client.sendmail("trac@example.org", RECIPIENTS[:2], MESSAGE)
        found = await eventually(lambda: set(STATUS.findall(caplog.text)) or None)
        assert upstream.writes_with(b"MAIL FROM")
        await relay.stop()
    return found


@pytest.mark.parametrize("misbehaviour", SCENARIOS.values(), ids=SCENARIOS)
async def test_per_recipient_results_are_the_same_with_and_without_pipelining(
    make_config, start_relay, caplog, misbehaviour
):
    piped = await outcomes(make_config, start_relay, caplog, True, misbehaviour)
    plain = await outcomes(make_config, start_relay, caplog, False, misbehaviour)
    assert piped == plain and {rcpt for rcpt, _, _ in piped} == set(RECIPIENTS[:2])


# --- a session kept for the next batch ------------------------------------------------------


async def one_by_one(relay, upstream, count: int, pause: float = 0.0) -> None:
    """Submit ``count`` messages, each once the one before was delivered (separate batches)."""
    for _ in range(count):
        before = len(upstream.messages)
        async with aiosmtplib.SMTP(hostname="127.0.0.1", port=port_of(relay)) as client:
            await client.sendmail("trac@example.org", ["a@example.org"], MESSAGE)
        await eventually(lambda before=before: len(upstream.messages) > before)
        await asyncio.sleep(pause)


def relay_config(make_config, upstream, **extra):
    section = {"host": "127.0.0.1", "port": upstream.port, "tls": "none", **extra}
    return make_config(upstream=section)


@pytest.mark.parametrize(("idle", "sessions"), [(5, 1), (0, 3)], ids=["kept", "off"])
async def test_consecutive_batches_share_one_session_while_it_is_kept(
    make_config, start_relay, idle, sessions
):
    with RecordingUpstream(pipelining=True) as upstream:
        relay = await start_relay(relay_config(make_config, upstream, idle_time=idle))
        await one_by_one(relay, upstream, 3)
        assert len(upstream.writes_with(b"EHLO")) == sessions
        rsets = len(upstream.writes_with(b"RSET\r\n"))
        assert rsets == (2 if idle else 0)  # checked before each reuse


async def test_a_kept_session_is_closed_once_idle_for_idle_time(make_config, start_relay):
    with RecordingUpstream(pipelining=True) as upstream:
        relay = await start_relay(relay_config(make_config, upstream, idle_time=0.3))
        await one_by_one(relay, upstream, 1)
        await eventually(lambda: upstream.writes_with(b"QUIT\r\n"))
        await one_by_one(relay, upstream, 1)
        assert len(upstream.writes_with(b"EHLO")) == 2


async def test_a_kept_session_the_upstream_dropped_is_replaced(make_config, start_relay):
    with RecordingUpstream(pipelining=True, idle_timeout=0.3) as upstream:
        relay = await start_relay(relay_config(make_config, upstream, idle_time=30))
        await one_by_one(relay, upstream, 2, pause=0.8)  # the upstream hangs up in between
        assert len(upstream.writes_with(b"EHLO")) == 2
        assert [m.recipients for m in upstream.messages] == [["a@example.org"]] * 2


async def test_pipelining_and_reuse_work_inside_starttls(
    make_config, start_relay, server_context, ca_file
):
    with RecordingUpstream(pipelining=True, tls="starttls", context=server_context) as upstream:
        relay = await start_relay(
            relay_config(make_config, upstream, tls="starttls", ca_file=str(ca_file))
        )
        await one_by_one(relay, upstream, 2)
        assert [m.tls for m in upstream.messages] == [True, True]
        piped = [c for c in upstream.writes_with(b"MAIL FROM") if b"RCPT TO" in c and b"DATA" in c]
        assert len(piped) == 2 and len(upstream.writes_with(b"STARTTLS")) == 1


async def test_kept_sessions_are_dropped_when_the_password_changes(
    make_config, start_relay, tmp_path
):
    secret = tmp_path / "password"
    secret.write_text("one\n")
    secret.chmod(0o600)
    auth = {"username": "relay@x.org", "password_file": str(secret), "allow_insecure_auth": True}
    with RecordingUpstream(pipelining=True, credentials=("relay@x.org", "one")) as upstream:
        relay = await start_relay(relay_config(make_config, upstream, **auth))
        await one_by_one(relay, upstream, 1)
        upstream.credentials = ("relay@x.org", "two")
        secret.write_text("two\n")  # the same config, another password: a reload reads it
        relay.reload(relay_config(make_config, upstream, **auth))
        await one_by_one(relay, upstream, 1)  # over a new session, logged in with "two"
        assert len(upstream.auth_attempts) == 2 and len(upstream.writes_with(b"EHLO")) == 2
