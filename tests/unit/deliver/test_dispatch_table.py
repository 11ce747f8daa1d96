"""Fail-over, holds, quota and retry timing of the dispatcher, over a scripted session.

The dispatcher's transport seam (``connect``) and clock are given here: no sockets, no
sleeps. What the wire does is tested over real sockets in tests/integration.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import pytest

from relay.deliver.dispatch import Dispatcher, Result
from relay.deliver.oauth import TokenSource
from relay.deliver.options import QuotaConfig, UpstreamConfig
from relay.deliver.release import Releaser
from relay.deliver.secrets import UpstreamSecrets
from relay.errors import UpstreamError
from relay.model import Envelope
from relay.record import Record
from relay.reply import Reply
from relay.secret import Secret

OK = Reply(250, "2.0.0 OK queued")
BUSY = Reply(451, "4.3.0 try later")
UNKNOWN = Reply(550, "5.1.1 no such user")
BAD_LOGIN = Reply(535, "5.7.8 Username and Password not accepted")
DAILY_LIMIT = Reply(550, "5.4.5 Daily user sending limit exceeded")
REFUSED = Reply(0, "connect to a.example: Connection refused")

A = UpstreamConfig(name="a", host="a.example")
B = UpstreamConfig(name="b", host="b.example")
QUOTA = QuotaConfig(messages=1, window=3600.0, pause=900.0)
A_QUOTA = UpstreamConfig(name="a", host="a.example", quota=QUOTA)


@dataclass
class Scripted:
    """One scripted session: the reply it gives each transaction, what it was sent."""

    relay: str
    replies: Reply
    supports_8bitmime: bool = True
    supports_smtputf8: bool = True
    usable: bool = True
    sent: list[tuple[str, tuple[str, ...], bytes, tuple[str, ...]]] = field(default_factory=list)

    async def send(
        self,
        sender: str,
        recipients: Sequence[str],
        message: bytes,
        *,
        mail_options: Sequence[str] = (),
    ) -> dict[str, Reply]:
        self.sent.append((sender, tuple(recipients), message, tuple(mail_options)))
        return dict.fromkeys(recipients, self.replies)

    @property
    def transactions(self) -> int:
        return len(self.sent)

    async def ready(self) -> bool:
        return self.usable

    async def close(self) -> None:
        self.usable = False

    def abort(self) -> None:
        self.usable = False


class Upstreams:
    """A scripted transport: per host, a session reply or a failure to open one."""

    def __init__(self, script: dict[str, Reply], **capabilities: bool) -> None:
        self.script = script
        self.capabilities = capabilities
        self.opened: list[str] = []
        self.passwords: list[str | None] = []  # what each opening was to log in with
        self.sessions: list[Scripted] = []

    async def __call__(
        self,
        upstream: UpstreamConfig,
        *,
        hostname: str,
        secrets: UpstreamSecrets,
        tokens: TokenSource | None,
        mx_host: tuple[str, str] | None,
        after_refusal: bool,
    ) -> Scripted:
        self.opened.append(upstream.host)
        self.passwords.append(secrets.password.reveal() if secrets.password else None)
        relay = f"{upstream.host}[192.0.2.1]:587"
        reply = self.script[upstream.host]
        if reply.code == 0 or reply in (BAD_LOGIN,):
            raise UpstreamError(reply.code, reply.text, relay=relay)
        session = Scripted(relay, reply, **self.capabilities)
        self.sessions.append(session)
        return session


class Clock:
    """A clock the test moves."""

    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def record(*rcpts: str, message: bytes = b"Subject: hi\r\n\r\nbody\r\n", options=()) -> Record:
    envelope = Envelope(sender="trac@example.org", recipients=rcpts, mail_options=options)
    return Record(queue_id="0000000000001ABCDE", envelope=envelope, message=message)


def dispatcher(upstreams, transport, clock, tmp_path: Path, hold: float = 300.0) -> Dispatcher:
    """A dispatcher over the scripted transport; sessions are not kept between batches
    (``idle_time: 0``), so every batch opens its own and the tables count them."""
    return Dispatcher(
        tuple(replace(upstream, idle_time=0.0) for upstream in upstreams),
        hostname="relay.example",
        state=tmp_path,
        hold=hold,
        connect=transport,
        clock=clock,
    )


async def deliver(d: Dispatcher, message: Record) -> Result:
    async with d.run() as run:
        return await run.deliver(message, message.envelope.recipients)


@pytest.mark.parametrize(
    ("a", "b", "reply", "relay", "opened"),
    [
        (OK, OK, OK, "a.example[192.0.2.1]:587", ["a.example"]),
        (REFUSED, OK, OK, "b.example[192.0.2.1]:587", ["a.example", "b.example"]),
        (BUSY, OK, OK, "b.example[192.0.2.1]:587", ["a.example", "b.example"]),
        (DAILY_LIMIT, OK, OK, "b.example[192.0.2.1]:587", ["a.example", "b.example"]),
        (UNKNOWN, OK, UNKNOWN, "a.example[192.0.2.1]:587", ["a.example"]),
        (REFUSED, BUSY, BUSY, "b.example[192.0.2.1]:587", ["a.example", "b.example"]),
    ],
    ids=[
        "first-takes",
        "refused-moves-on",
        "4xx-moves-on",
        "quota-moves-on",
        "5xx-stays",
        "last-reply-counts",
    ],
)
async def test_fail_over_along_the_chain(tmp_path, a, b, reply, relay, opened):
    transport = Upstreams({"a.example": a, "b.example": b})
    result = await deliver(dispatcher((A, B), transport, Clock(), tmp_path), record("x@y.org"))
    assert result.replies == {"x@y.org": reply}
    assert result.relays == {"x@y.org": relay}
    assert transport.opened == opened


async def test_a_target_that_failed_is_not_tried_again_in_the_same_batch(tmp_path):
    transport = Upstreams({"a.example": REFUSED, "b.example": OK})
    d = dispatcher((A, B), transport, Clock(), tmp_path)
    async with d.run() as run:
        for rcpt in ("x@y.org", "z@y.org"):
            await run.deliver(record(rcpt), [rcpt])
    assert transport.opened == ["a.example", "b.example"]
    assert [sent[1] for sent in transport.sessions[0].sent] == [("x@y.org",), ("z@y.org",)]


async def test_bad_credentials_hold_that_upstream_until_hold_passes(tmp_path):
    clock, transport = Clock(), Upstreams({"a.example": BAD_LOGIN})
    d = dispatcher((A,), transport, clock, tmp_path, hold=300.0)
    first = await deliver(d, record("x@y.org"))
    assert first.held == {"x@y.org"}
    assert first.not_before == clock.now + 300.0
    assert d.failing_since == clock.now
    clock.now += 299.0
    second = await deliver(d, record("x@y.org"))
    assert second.held == {"x@y.org"} and second.replies == {"x@y.org": BAD_LOGIN}
    assert transport.opened == ["a.example"]  # held: not even a connection
    clock.now += 2.0
    transport.script["a.example"] = OK
    third = await deliver(d, record("x@y.org"))
    assert third.replies == {"x@y.org": OK} and not third.held
    assert d.failing_since is None


async def test_a_hold_ends_when_the_credentials_change(tmp_path):
    clock, transport = Clock(), Upstreams({"a.example": BAD_LOGIN})
    d = dispatcher((A,), transport, clock, tmp_path)
    await deliver(d, record("x@y.org"))
    assert d.configure(
        (UpstreamConfig(name="a", host="a.example", username="new"),), dns=None, hold=300.0
    )
    transport.script["a.example"] = OK
    assert (await deliver(d, record("x@y.org"))).replies == {"x@y.org": OK}


async def test_each_upstream_logs_in_with_its_own_secrets_and_a_new_password_ends_a_hold(
    tmp_path,
):
    clock, transport = Clock(), Upstreams({"a.example": BAD_LOGIN, "b.example": BUSY})
    a, b = (replace(upstream, idle_time=0.0) for upstream in (A, B))
    d = dispatcher((A, B), transport, clock, tmp_path)
    old = {a: UpstreamSecrets(password=Secret("old")), b: UpstreamSecrets(password=Secret("b"))}
    d.configure((a, b), dns=None, hold=300.0, secrets=old)
    await deliver(d, record("x@y.org"))
    assert transport.passwords == ["old", "b"]
    assert not d.configure((a, b), dns=None, hold=300.0, secrets=dict(old))  # the same: held
    assert d.held(a, clock.now) is not None
    new = {**old, a: UpstreamSecrets(password=Secret("new"))}
    assert d.configure((a, b), dns=None, hold=300.0, secrets=new)  # the same config
    transport.script["a.example"] = OK
    assert (await deliver(d, record("x@y.org"))).replies == {"x@y.org": OK}
    assert transport.passwords[-1] == "new"


async def test_the_quota_makes_mail_wait_until_the_window_frees_a_slot(tmp_path):
    clock, transport = Clock(), Upstreams({"a.example": OK})
    d = dispatcher((A_QUOTA,), transport, clock, tmp_path)
    start = clock.now
    assert (await deliver(d, record("x@y.org"))).replies == {"x@y.org": OK}
    clock.now += 60.0
    waiting = await deliver(d, record("z@y.org"))
    assert waiting.replies == {} and set(waiting.waiting) == {"z@y.org"}
    assert waiting.not_before == start + QUOTA.window
    clock.now = start + QUOTA.window + 1
    assert (await deliver(d, record("z@y.org"))).replies == {"z@y.org": OK}
    assert len(transport.sessions) == 2  # the waiting message opened no session


async def test_a_quota_reply_pauses_the_account_for_its_pause(tmp_path):
    clock, transport = Clock(), Upstreams({"a.example": DAILY_LIMIT})
    quota = QuotaConfig(messages=100, window=3600.0, pause=900.0)
    d = dispatcher((UpstreamConfig(host="a.example", quota=quota),), transport, clock, tmp_path)
    paused_at = clock.now
    assert (await deliver(d, record("x@y.org"))).replies == {"x@y.org": DAILY_LIMIT}
    clock.now += 10.0
    transport.script["a.example"] = OK
    waiting = await deliver(d, record("x@y.org"))
    assert set(waiting.waiting) == {"x@y.org"}
    assert waiting.not_before == paused_at + 900.0  # the refused send was given back
    clock.now = paused_at + 901.0
    assert (await deliver(d, record("x@y.org"))).replies == {"x@y.org": OK}


async def test_a_refused_transaction_gives_its_quota_slot_back(tmp_path):
    clock, transport = Clock(), Upstreams({"a.example": UNKNOWN})
    d = dispatcher((A_QUOTA,), transport, clock, tmp_path)
    assert (await deliver(d, record("x@y.org"))).replies == {"x@y.org": UNKNOWN}
    transport.script["a.example"] = OK
    assert (await deliver(d, record("z@y.org"))).replies == {"z@y.org": OK}


@pytest.mark.parametrize(
    ("eight_bit", "smtputf8", "client_options", "sent_options", "reply"),
    [
        (True, True, (), ("BODY=8BITMIME",), OK),
        (False, True, (), (), OK),
        (True, True, ("SMTPUTF8",), ("BODY=8BITMIME", "SMTPUTF8"), OK),
        (
            True,
            False,
            ("SMTPUTF8",),
            None,
            Reply(553, "5.6.7 upstream does not support SMTPUTF8 addresses"),
        ),
    ],
    ids=["8bitmime", "downgrade", "smtputf8", "no-smtputf8"],
)
async def test_extensions_decide_the_transaction(
    tmp_path, eight_bit, smtputf8, client_options, sent_options, reply
):
    transport = Upstreams(
        {"a.example": OK}, supports_8bitmime=eight_bit, supports_smtputf8=smtputf8
    )
    body = "Subject: café\r\nContent-Type: text/plain; charset=utf-8\r\n\r\ncafé\r\n".encode()
    message = record("x@y.org", message=body, options=client_options)
    result = await deliver(dispatcher((A,), transport, Clock(), tmp_path), message)
    assert result.replies == {"x@y.org": reply}
    sent = transport.sessions[0].sent
    if sent_options is None:
        assert sent == []
    else:
        assert [options for *_, options in sent] == [sent_options]
        assert sent[0][2].isascii() is (not eight_bit)


async def test_a_release_in_relay_mode_shares_the_delivery_quota_and_skips_the_routes(tmp_path):
    clock, transport = Clock(), Upstreams({"a.example": OK, "b.example": OK})
    routed = UpstreamConfig(name="b", host="b.example", recipients=("*@y.org",))
    d = dispatcher((routed, A_QUOTA), transport, clock, tmp_path)
    releaser = Releaser(hostname="relay.example", state=tmp_path, shared=d)
    releaser.reconfigure(A_QUOTA, hold=300.0, dns=None, dkim=(), secrets={})
    (sent,) = await releaser.release(record("x@y.org"), ["x@y.org"])
    assert sent["status"] == "sent" and sent["relay"] == "a.example[192.0.2.1]:587"
    assert transport.opened == ["a.example"]  # not b.example, where the route points
    assert (await deliver(d, record("z@other.org"))).waiting  # the release used the slot
