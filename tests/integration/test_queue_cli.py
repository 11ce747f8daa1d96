"""``notify-relay queue`` against a real spool with messages in every state, server up or down."""

from __future__ import annotations

import asyncio
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

import tracmail
from helpers import eventually, submit
from upstream import FakeUpstream

from relay.model import Envelope, new_queue_id
from relay.queue.actions import Action
from relay.queue.control import QueueLock
from relay.queue.spool import QueueState, Spool
from relay.record import Attempt, DeliveryState, Record

HOUR = 3600.0


def put(spool: Spool, state: QueueState, *, next_attempt: float = 0.0, rcpt: str = "") -> str:
    """Write a message straight into ``state`` as the relay would have left it there."""
    queue_id = new_queue_id()
    rcpt = rcpt or f"{queue_id.lower()}@example.org"
    envelope = Envelope(sender="trac@example.org", recipients=(rcpt,), received_at=time.time())
    message = f"From: trac@example.org\r\nTo: {rcpt}\r\nSubject: {queue_id}\r\n\r\nbody\r\n"
    spool.accept(Record(queue_id=queue_id, envelope=envelope, message=message.encode()))
    if state is QueueState.INCOMING:
        return queue_id
    attempt = Attempt(
        at=time.time(),
        relay="up[127.0.0.1]:25",
        recipients=(rcpt,),
        status="deferred",
        reply="451 4.3.0 try later",
    )
    failed = (rcpt,) if state is QueueState.FAILED else ()
    reply = "550 5.1.1 no such user" if failed else attempt.reply
    spool.write_state(
        queue_id,
        DeliveryState(
            attempts=1, next_attempt=next_attempt, failed=failed, last_reply=reply
        ).with_attempt(replace(attempt, reply=reply)),
    )
    spool.move(queue_id, QueueState.INCOMING, state)
    return queue_id


def every_state(spool: Spool) -> dict[QueueState, str]:
    spool.create()
    ids = {state: put(spool, state, next_attempt=time.time() + HOUR) for state in QueueState}
    spool.path(ids[QueueState.CORRUPT], QueueState.CORRUPT).write_bytes(b"garbage")
    return ids


async def queue(*args: str) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "relay",
        "queue",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await process.communicate()
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


def relay_config(make_config, upstream: FakeUpstream):
    return make_config(
        upstream={"host": "127.0.0.1", "port": upstream.port, "tls": "none"},
        queue={"path": "queue", "retry": {"min_backoff": "1h", "max_backoff": "2h", "jitter": 0}},
    )


def delivered_to(upstream: FakeUpstream) -> set[str]:
    return {rcpt for message in upstream.messages for rcpt in message.recipients}


async def test_list_and_show_without_a_server(tmp_path):
    spool = Spool(tmp_path / "queue")
    ids = every_state(spool)
    code, out, err = await queue("list", "--queue", str(spool.root))
    assert code == 0, err
    for state, queue_id in ids.items():
        (line,) = [line for line in out.splitlines() if line.startswith(queue_id)]
        assert f" {state.value} " in line
    assert "@example.org>: 550 5.1.1 no such user\n" in out and "    reply for <" in out
    assert out.splitlines()[-1].startswith("-- 5 message(s)")

    code, out, _ = await queue("list", "--json", "--queue", str(spool.root))
    listed = {entry["id"]: entry for entry in json.loads(out)}
    assert {entry["state"] for entry in listed.values()} == {state.value for state in QueueState}
    deferred = listed[ids[QueueState.DEFERRED]]
    assert deferred["next_attempt"] > time.time() and deferred["attempts"] == 1

    code, out, _ = await queue("show", ids[QueueState.FAILED], "--queue", str(spool.root))
    assert code == 0
    assert "state:        failed" in out and "status=deferred (550 5.1.1 no such user)" in out
    assert f"Subject: {ids[QueueState.FAILED]}" in out
    code, _, err = await queue("show", "NOSUCHID", "--queue", str(spool.root))
    assert code == 1 and "no such message" in err


async def test_verbs_while_the_server_runs(make_config, start_relay):
    with FakeUpstream(tls="none") as upstream:
        config = relay_config(make_config, upstream)
        spool = Spool(config.queue.path)
        ids = every_state(spool)
        del ids[QueueState.INCOMING]  # a running server delivers it at once
        due_at = time.time() + 5
        soon = put(spool, QueueState.DEFERRED, next_attempt=due_at)
        other_failed = put(spool, QueueState.FAILED)
        relay = await start_relay(config)
        args = ("--config", str(config.source))
        await eventually(lambda: len(upstream.messages) == 1)  # the incoming one

        code, out, _ = await queue("list", *args)
        assert code == 0 and all(queue_id in out for queue_id in ids.values())

        code, out, err = await queue("hold", soon, *args)  # due in seconds: the timer must go
        assert (code, out.strip()) == (0, f"{soon}: held"), err
        await asyncio.sleep(due_at + 1 - time.time())
        assert spool.find(soon) is QueueState.HOLD and len(upstream.messages) == 1

        code, out, _ = await queue("release", soon, *args)
        assert code == 0 and "released" in out
        await eventually(lambda: spool.find(soon) is None)

        code, out, _ = await queue("retry", ids[QueueState.DEFERRED], *args)  # due in an hour
        assert code == 0 and "due now" in out
        await eventually(lambda: spool.find(ids[QueueState.DEFERRED]) is None)

        code, out, _ = await queue("requeue", ids[QueueState.FAILED], *args)
        assert code == 0 and "requeued for 1 recipient(s)" in out
        await eventually(lambda: spool.find(ids[QueueState.FAILED]) is None)
        assert len(upstream.messages) == 4

        code, out, err = await queue("hold", ids[QueueState.CORRUPT], "NOSUCHID", *args)
        assert code == 1 and "it is corrupt; hold takes incoming or deferred mail" in err
        assert "NOSUCHID: no such message in the queue" in err

        code, out, _ = await queue("delete", "--all-failed", ids[QueueState.CORRUPT], *args)
        assert code == 0 and out.count("deleted") == 2
        assert spool.ids(QueueState.FAILED) == spool.ids(QueueState.CORRUPT) == []
        assert spool.find(other_failed) is None
        code, out, _ = await queue("list", *args)
        assert out.splitlines()[-1].startswith("-- 1 message(s)") and "hold" in out
        assert relay.manager is not None


async def test_a_reserved_queue_file_is_no_message_to_the_verbs(make_config, start_relay):
    # an empty file in incoming/ is a queue id a receiving process may write any moment:
    # removed or moved under it, mail answered 250 would be lost or held
    with FakeUpstream(tls="none") as upstream:
        config = relay_config(make_config, upstream)
        await start_relay(config)
        incoming = Path(config.queue.path) / "incoming"
        reserved = sorted(path.name for path in incoming.iterdir() if not path.stat().st_size)
        assert len(reserved) >= 3
        args = ("--config", str(config.source))
        for verb, queue_id in zip(("delete", "hold", "show"), reserved, strict=False):
            code, out, err = await queue(verb, queue_id, *args)
            assert (code, out) == (1, ""), (verb, out)
            assert f"{queue_id}: no such message in the queue" in err, (verb, err)
            assert (incoming / queue_id).exists()
            assert not (Path(config.queue.path) / "hold" / queue_id).exists()


async def test_flush_attempts_every_deferred_message_now(make_config, start_relay):
    with FakeUpstream(tls="none") as upstream:
        config = relay_config(make_config, upstream)
        spool = Spool(config.queue.path)
        spool.create()
        later = [put(spool, QueueState.DEFERRED, next_attempt=time.time() + HOUR) for _ in "ab"]
        held = put(spool, QueueState.HOLD)
        await start_relay(config)
        code, out, _ = await queue("flush", "--config", str(config.source))
        assert code == 0 and out.count("due now") == 2
        await eventually(lambda: not spool.ids(QueueState.DEFERRED))
        assert len(upstream.messages) == 2 and spool.find(held) is QueueState.HOLD
        assert all(spool.find(queue_id) is None for queue_id in later)


async def test_changes_without_a_server_go_out_when_it_starts(make_config, start_relay):
    with FakeUpstream(tls="none") as upstream:
        config = relay_config(make_config, upstream)
        spool = Spool(config.queue.path)
        ids = every_state(spool)
        args = ("--config", str(config.source))
        code, out, _ = await queue("release", ids[QueueState.HOLD], *args)
        assert code == 0 and "no server is running" in out
        assert spool.find(ids[QueueState.HOLD]) is QueueState.DEFERRED
        code, out, _ = await queue("requeue", ids[QueueState.FAILED], *args)
        assert spool.find(ids[QueueState.FAILED]) is QueueState.INCOMING
        code, _, _ = await queue("hold", ids[QueueState.INCOMING], *args)
        assert code == 0 and spool.find(ids[QueueState.INCOMING]) is QueueState.HOLD

        await start_relay(config)
        await eventually(lambda: len(upstream.messages) == 2)
        wanted = {ids[QueueState.HOLD], ids[QueueState.FAILED]}
        assert delivered_to(upstream) == {f"{queue_id.lower()}@example.org" for queue_id in wanted}


async def test_a_message_being_delivered_is_not_changed(make_config, start_relay):
    with FakeUpstream(tls="none") as upstream:
        relay = await start_relay(relay_config(make_config, upstream))
        assert relay.manager is not None
        relay.manager._busy.add("1234")  # as a worker does while it delivers
        report = await relay.manager.apply(Action.HOLD, ["1234"])
        assert report.refused == ("1234: being delivered right now; try again in a moment",)


def test_the_queue_lock_is_exclusive(tmp_path):
    first, second = QueueLock(tmp_path), QueueLock(tmp_path)
    assert first.try_acquire() and not second.try_acquire()
    first.release()
    assert second.try_acquire()
    second.release()


async def test_list_shows_each_recipients_own_final_reply(make_config, start_relay):
    def refuse_bob(address: str) -> str | None:
        return "550 5.1.1 bob: no such user" if address.startswith("bob@") else None

    with FakeUpstream(tls="none", rcpt_reply=refuse_bob) as upstream:
        config = relay_config(make_config, upstream)
        relay = await start_relay(config)
        await submit(relay, ["ann@example.org", "bob@example.org"])
        spool = relay.manager.spool
        await eventually(lambda: spool.ids(QueueState.FAILED))
        code, out, err = await queue("list", "--config", str(config.source))
        assert code == 0, err
        assert "    reply for <ann@example.org>: 250 2.0.0 OK queued as up1" in out
        assert "    reply for <bob@example.org>: 550 5.1.1 bob: no such user" in out
        assert "250" not in out.split("reply for <bob@example.org>")[1]
        code, out, _ = await queue("list", "--json", "--config", str(config.source))
        (entry,) = json.loads(out)
        assert entry["replies"] == {
            "ann@example.org": "250 2.0.0 OK queued as up1",
            "bob@example.org": "550 5.1.1 bob: no such user",
        }
        assert entry["last_reply"] == "550 5.1.1 bob: no such user"


async def test_queue_ids_may_be_abbreviated_to_a_unique_prefix(tmp_path):
    spool = Spool(tmp_path / "queue")
    spool.create()
    first, second = (put(spool, QueueState.HOLD) for _ in "ab")
    shared = next(n for n in range(len(first)) if first[n] != second[n])
    root = ("--queue", str(spool.root))
    code, out, err = await queue("show", first[: shared + 1], *root)
    assert code == 0 and f"queue id:     {first}" in out, err
    code, out, err = await queue("release", second[: shared + 1], *root)
    assert code == 0 and out.startswith(f"{second}: released"), err
    code, out, err = await queue("delete", first[:shared], *root)
    assert code == 1 and spool.find(first) is QueueState.HOLD
    assert f"{first[:shared]}: ambiguous id prefix; it could be {first} or {second}" in err
    code, out, err = await queue("show", first[:shared], *root)
    assert code == 1 and "ambiguous id prefix" in err


def test_mail_verbs_resolve_prefixes_as_queue_verbs_do(tmp_path, capsys):
    from relay.cli.main import main

    root = tmp_path / "mail"
    first, second = tracmail.fill(root, 2)
    shared = next(n for n in range(len(first)) if first[n] != second[n])
    store = ["--store", str(root)]
    assert main(["mail", "show", *store, "--raw", second[: shared + 1]]) == 0
    capsys.readouterr()
    assert main(["mail", "show", *store, first[:shared]]) == 1
    assert f"{first[:shared]}: ambiguous id prefix; it could be {first} or {second}" in (
        capsys.readouterr().err
    )
