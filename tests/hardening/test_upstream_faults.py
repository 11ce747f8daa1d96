"""Upstream faults (security reference F.39-F.46, and A.3 on the outbound side).

The upstream is aiosmtpd with small named misbehaviours (tests/hardening/misbehave.py) or
a scripted server. Every test ends with the exact number of copies the upstream took: one
per recipient, except in the one window SMTP cannot close (the reply to the final dot is
lost, RFC 1047), where the duplicate is expected and counted. TLS faults (handshake
failure, certificate change, STARTTLS response injection) are in test_tls_auth.py; bad
credentials, the Gmail quota and a missing STARTTLS in tests/integration/test_delivery.py.
"""

from __future__ import annotations

import itertools

import pytest
from helpers import port_of

from relay.deliver.smtp import UpstreamSession
from relay.model import Envelope
from relay.queue.spool import Spool
from relay.receive.options import Limits
from relay.record import Record

from .flow import queued, submit, wait_for
from .misbehave import (
    DROP,
    RECORD_THEN_DROP,
    RawUpstream,
    endless_continuation,
    fail_first,
    greet_421_once,
    huge_reply_line,
    record_raw_data,
    refuse,
)

MESSAGE = b"From: trac@example.org\r\nTo: dev@example.org\r\nSubject: fault\r\n\r\nbody\r\n"
THREE = ("alice@example.org", "bob@example.org", "carol@example.org")


async def drained(relay) -> None:
    """Wait until nothing is left in incoming/ or deferred/."""
    await wait_for(lambda: not {"incoming", "deferred"} & set(queued(relay)))


def copies(upstream) -> list[list[str]]:
    return [message.recipients for message in upstream.messages]


#: Misbehaviours for the first attempt only (each a fresh one per test).
TEMPORARY = {
    "mail-451": lambda: {"mail_reply": fail_first(1, "451 4.3.0 try again")},
    "mail-drop": lambda: {"mail_reply": fail_first(1, DROP)},
    "rcpt-drop": lambda: {"rcpt_reply": fail_first(1, DROP)},
    "during-data": lambda: {"drop_during_data": 20},
    "data-451": lambda: {"data_reply": fail_first(1, "451 4.3.0 queue full")},
    "data-421": lambda: {"data_reply": fail_first(1, "421 4.7.0 closing")},
    "data-drop": lambda: {"data_reply": fail_first(1, DROP)},
}


@pytest.mark.parametrize("fault", TEMPORARY.values(), ids=TEMPORARY)
async def test_temporary_fault_is_retried_and_delivered_once(relay_for, upstream, fault, caplog):
    for name, value in fault().items():
        setattr(upstream, name, value)
    relay = await relay_for(upstream)
    await submit(port_of(relay), MESSAGE, recipients=THREE)
    await wait_for(lambda: upstream.messages)
    await drained(relay)
    assert copies(upstream) == [list(THREE)]
    assert queued(relay) == {}
    assert caplog.text.count("attempts=2, dsn=2.0.0, status=sent") == 3


async def test_a_deferred_recipient_is_retried_alone(relay_for, upstream):
    upstream.rcpt_reply = refuse({"bob": "450 4.2.1 mailbox busy"}, times=1)
    relay = await relay_for(upstream)
    await submit(port_of(relay), MESSAGE, recipients=THREE)
    await wait_for(lambda: len(upstream.messages) == 2)
    await drained(relay)
    assert copies(upstream) == [["alice@example.org", "carol@example.org"], ["bob@example.org"]]
    assert queued(relay) == {}


async def test_5xx_after_the_final_dot_bounces_every_recipient_once(relay_for, upstream):
    upstream.data_reply = lambda envelope: "554 5.7.1 message rejected"
    relay = await relay_for(upstream)
    await submit(port_of(relay), MESSAGE, recipients=THREE)
    (queue_id,) = (await wait_for(lambda: queued(relay).get("failed")))[:1]
    state = relay.manager.spool.read_state(queue_id)
    assert (state.attempts, set(state.failed), state.done) == (1, set(THREE), ())
    assert upstream.messages == [] and queued(relay) == {"failed": [queue_id]}


async def test_mixed_recipient_replies_end_each_recipient_once(relay_for, upstream):
    upstream.rcpt_reply = refuse(
        {"bob": "550 5.1.1 no such user", "carol": "452 4.2.2 over quota"}, times=1
    )
    relay = await relay_for(upstream)
    recipients = (*THREE, "dave@example.org")
    await submit(port_of(relay), MESSAGE, recipients=recipients)
    (queue_id,) = (await wait_for(lambda: queued(relay).get("failed")))[:1]
    assert copies(upstream) == [
        ["alice@example.org", "dave@example.org"],
        ["carol@example.org"],
    ]
    state = relay.manager.spool.read_state(queue_id)
    assert state.failed == ("bob@example.org",)
    assert set(state.done) == {"alice@example.org", "carol@example.org", "dave@example.org"}


async def test_a_slow_reply_to_the_final_dot_is_waited_for_not_resent(relay_for, upstream, caplog):
    # RFC 5321 4.5.3.2.6: the client waits (data_timeout) for the reply to the final dot,
    # although every other command times out after ``timeout``.
    upstream.final_dot_delay = lambda: 3.0
    relay = await relay_for(upstream, upstream={"timeout": 1, "data_timeout": 10})
    await submit(port_of(relay), MESSAGE)
    await wait_for(lambda: upstream.messages, timeout=10)
    await drained(relay)
    assert copies(upstream) == [["dev@example.org"]]
    assert "attempts=1, dsn=2.0.0, status=sent" in caplog.text


LOST_REPLY = {
    "closed": lambda: {"data_reply": fail_first(1, RECORD_THEN_DROP)},
    "past-data-timeout": lambda: {
        "final_dot_delay": itertools.chain([3.0], itertools.repeat(0.0)).__next__
    },
}


@pytest.mark.parametrize("fault", LOST_REPLY.values(), ids=LOST_REPLY)
async def test_a_lost_reply_to_the_final_dot_gives_one_counted_duplicate(
    relay_for, upstream, fault
):
    # F.43: the upstream has the message but the relay never heard so; it must retry
    for name, value in fault().items():
        setattr(upstream, name, value)
    relay = await relay_for(upstream, upstream={"timeout": 1, "data_timeout": 1})
    await submit(port_of(relay), MESSAGE)
    await wait_for(lambda: len(upstream.messages) == 2, timeout=10)
    await drained(relay)
    duplicates = len(upstream.messages) - 1
    assert duplicates == 1 and copies(upstream) == [["dev@example.org"]] * 2


async def test_a_421_greeting_is_deferred_and_retried(relay_for):
    raw: list[bytes] = []
    with RawUpstream(greet_421_once(record_raw_data(raw))) as server:
        relay = await relay_for(server)
        await submit(port_of(relay), MESSAGE)
        (data,) = await wait_for(lambda: raw)
        await drained(relay)
        assert server.connections == 2 and data.startswith(MESSAGE)


@pytest.mark.parametrize("script", [huge_reply_line, endless_continuation])
async def test_hostile_replies_defer_and_the_relay_keeps_working(relay_for, script):
    # F.44: aiosmtplib bounds a reply (8 KB a line, 32 KB a reply); the session fails
    with RawUpstream(script) as server:
        # the relay retries into a closed port while the test ends: its stop must still be
        # prompt (a refused connect can swallow one cancellation, Python 3.11 wait_for)
        relay = await relay_for(server, upstream={"timeout": 2})
        await submit(port_of(relay), MESSAGE)
        (queue_id,) = (await wait_for(lambda: queued(relay).get("deferred")))[:1]
        assert relay.manager.spool.read_state(queue_id).last_reply
        assert (await submit(port_of(relay), MESSAGE)).startswith("2.0.0")


async def test_a_broken_session_is_replaced_and_the_batch_goes_on(relay_for, upstream):
    # F.46: the upstream drops the connection at the 5th of 20 messages
    calls = itertools.count(1)
    upstream.data_reply = lambda envelope: DROP if next(calls) == 5 else None
    relay = await relay_for(upstream)
    for number in range(20):
        await submit(port_of(relay), MESSAGE.replace(b"fault", b"fault %d" % number))
    await wait_for(lambda: len(upstream.messages) == 20)
    await drained(relay)
    subjects = sorted(m.content.split(b"\r\n")[2] for m in upstream.messages)
    assert subjects == sorted(b"Subject: fault %d" % number for number in range(20))


async def test_permanent_size_refusal_bounces_and_intake_limit_stays_under_gmails(
    relay_for, upstream
):
    # F.45: 25 MB is Gmail's published limit; the listener never accepts more by default
    assert Limits().max_message_size <= 25 * 1024 * 1024
    upstream.data_reply = lambda envelope: "552 5.3.4 Your message exceeded the size limit"
    relay = await relay_for(upstream)
    await submit(port_of(relay), MESSAGE)
    (queue_id,) = (await wait_for(lambda: queued(relay).get("failed")))[:1]
    assert relay.manager.spool.read_state(queue_id).last_reply.startswith("552 5.3.4")


async def test_stored_bare_line_ends_and_dots_go_out_crlf_and_dot_stuffed(relay_for, tmp_path):
    # A.3: the outbound safety net, for stored bytes the listener itself would refuse
    stored = (
        b"Subject: dots\r\n\r\nhello\n.\r\nMAIL FROM:<evil@attacker.test>\r\n"
        b"\r.\r\n.\r\n.x\r\nend\r\n"
    )
    spool = Spool(tmp_path / "queue")
    spool.create()
    envelope = Envelope(sender="trac@example.org", recipients=("dev@example.org",))
    spool.accept(Record(queue_id="A3", envelope=envelope, message=stored))
    raw: list[bytes] = []
    with RawUpstream(record_raw_data(raw)) as server:
        relay = await relay_for(server)
        (data,) = await wait_for(lambda: raw)
        await drained(relay)
    assert b"\n" not in data.replace(b"\r\n", b"") and b"\r" not in data.replace(b"\r\n", b"")
    assert data.count(b"\r\n.\r\n") == 1 and data.endswith(b"\r\n.\r\n")
    assert b"\r\n..\r\n" in data and b"\r\n..x\r\n" in data
    assert data.startswith(b"Subject: dots\r\n\r\nhello\r\n..\r\nMAIL FROM:")


async def test_a_stored_address_aiosmtplib_will_not_send_bounces_alone(
    relay_for, upstream, tmp_path
):
    # aiosmtplib refuses (ValueError) or strips Unicode spaces in an address; one that got
    # into the queue (an aliases file, an older version) must fail alone, not the worker
    spool = Spool(tmp_path / "queue")
    spool.create()
    bad = "dev\u3000ops@example.org"
    envelope = Envelope(sender="trac@example.org", recipients=("dev@example.org", bad))
    spool.accept(Record(queue_id="SPACE", envelope=envelope, message=MESSAGE))
    relay = await relay_for(upstream)
    (received,) = await wait_for(lambda: upstream.messages)
    assert received.recipients == ["dev@example.org"]
    state = relay.manager.spool.read_state((await wait_for(lambda: queued(relay).get("failed")))[0])
    (refusal,) = [attempt for attempt in state.log if attempt.recipients == (bad,)]
    assert state.failed == (bad,) and refusal.reply.startswith("553 5.1.3")
    await submit(port_of(relay), MESSAGE)  # the worker is still there
    await wait_for(lambda: len(upstream.messages) == 2)


async def test_an_unexpected_error_in_delivery_does_not_stop_the_queue(
    relay_for, upstream, monkeypatch
):
    send = UpstreamSession.send
    calls = itertools.count(1)

    async def flaky(self, *args, **kwargs):
        if next(calls) == 1:
            raise RuntimeError("a bug in delivery")
        return await send(self, *args, **kwargs)

    monkeypatch.setattr(UpstreamSession, "send", flaky)
    relay = await relay_for(upstream, upstream={"connections": 1})
    await submit(port_of(relay), MESSAGE)
    await submit(port_of(relay), MESSAGE.replace(b"fault", b"after"))
    await wait_for(lambda: len(upstream.messages) == 2, timeout=5)
