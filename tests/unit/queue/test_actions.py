"""Operator actions on a spool in a temporary directory, and the mailq-like listing."""

from __future__ import annotations

from pathlib import Path

import pytest

from relay.model import Envelope
from relay.queue.actions import Action, ActionRefused, apply, apply_all, due
from relay.queue.listing import format_table, read_entries
from relay.queue.spool import QueueState, Spool
from relay.record import DeliveryState, Record

NOW = 2_000_000_000.0


@pytest.fixture
def spool(tmp_path: Path) -> Spool:
    spool = Spool(tmp_path / "queue")
    spool.create()
    return spool


def put(spool: Spool, queue_id: str, state: QueueState, **fields: object) -> None:
    envelope = Envelope(sender="t@x.org", recipients=("a@x.org", "b@x.org"), received_at=1.0)
    spool.accept(Record(queue_id=queue_id, envelope=envelope, message=b"Subject: s\r\n\r\nb\r\n"))
    if fields:
        spool.write_state(queue_id, DeliveryState(**fields))
    if state is not QueueState.INCOMING:
        spool.move(queue_id, QueueState.INCOMING, state)


def test_hold_and_release_round_trip(spool: Spool) -> None:
    put(spool, "D1", QueueState.DEFERRED, attempts=2, next_attempt=NOW + 600)
    assert apply(spool, Action.HOLD, "D1", NOW) == "D1: held"
    assert spool.find("D1") is QueueState.HOLD and due(spool, "D1") is None
    assert apply(spool, Action.RELEASE, "D1", NOW) == "D1: released"
    assert spool.find("D1") is QueueState.DEFERRED and due(spool, "D1") == NOW


def test_a_held_message_never_attempted_is_released_to_incoming(spool: Spool) -> None:
    put(spool, "I1", QueueState.HOLD)
    apply(spool, Action.RELEASE, "I1", NOW)
    assert spool.find("I1") is QueueState.INCOMING and due(spool, "I1") == 0.0


def test_requeue_restarts_lifetime_and_attempts_but_keeps_sent_recipients(spool: Spool) -> None:
    put(spool, "F1", QueueState.FAILED, attempts=3, done=("a@x.org",), failed=("b@x.org",))
    assert apply(spool, Action.REQUEUE, "F1", NOW) == "F1: requeued for 1 recipient(s)"
    assert spool.find("F1") is QueueState.INCOMING
    assert not spool.path("F1", QueueState.FAILED).exists()
    record, state = spool.read("F1", QueueState.INCOMING), spool.read_state("F1")
    assert record.envelope.received_at == NOW
    assert (state.attempts, state.done, state.failed) == (0, ("a@x.org",), ())
    assert state.pending(record.envelope) == ("b@x.org",)


def test_retry_makes_a_deferred_message_due_now(spool: Spool) -> None:
    put(spool, "D1", QueueState.DEFERRED, attempts=1, next_attempt=NOW + 3600)
    assert apply(spool, Action.RETRY, "D1", NOW) == "D1: due now"
    assert due(spool, "D1") == NOW


@pytest.mark.parametrize(
    ("action", "state", "why"),
    [
        (Action.HOLD, QueueState.FAILED, "it is failed; hold takes incoming or deferred mail"),
        (Action.RELEASE, QueueState.DEFERRED, "it is deferred; release takes hold mail"),
        (Action.REQUEUE, QueueState.HOLD, "it is hold; requeue takes failed mail"),
        (Action.RETRY, QueueState.CORRUPT, "it is corrupt; retry takes incoming or deferred"),
    ],
)
def test_actions_refuse_the_wrong_state(spool, action, state, why) -> None:
    put(spool, "X1", state)
    with pytest.raises(ActionRefused, match=why):
        apply(spool, action, "X1", NOW)
    assert spool.find("X1") is state


def test_delete_takes_any_state_and_reports_unknown_ids(spool: Spool) -> None:
    put(spool, "C1", QueueState.CORRUPT)
    report = apply_all(spool, Action.DELETE, ["C1", "NOPE"], NOW)
    assert report.done == ("C1: deleted (was corrupt)",)
    assert report.refused == ("NOPE: no such message in the queue",)
    assert spool.find("C1") is None


def test_listing_shows_states_recipients_and_replies(spool: Spool) -> None:
    put(spool, "A1", QueueState.INCOMING)
    put(
        spool,
        "B2",
        QueueState.DEFERRED,
        attempts=1,
        next_attempt=NOW,
        done=("a@x.org",),
        last_reply="451 4.2.1 busy",
    )
    spool.path("C3", QueueState.CORRUPT).write_bytes(b"junk")
    table = format_table(read_entries(spool)).splitlines()
    assert table[0].split() == [
        "QUEUE",
        "ID",
        "SIZE",
        "ARRIVAL",
        "STATE",
        "NEXT",
        "ATTEMPT",
        "SENDER",
    ]
    assert table[1].startswith("A1") and " incoming " in table[1] and " now " in table[1]
    assert table[2] == "    to: <a@x.org>, <b@x.org>"
    assert " deferred " in table[3] and "    to: <a@x.org> (sent), <b@x.org>" in table
    assert "    last reply: 451 4.2.1 busy" in table
    assert table[-3].startswith("C3") and " corrupt " in table[-3]
    assert "not a notify-relay queue file" in table[-2]
    assert table[-1] == "-- 3 message(s), 38 bytes: 1 incoming, 1 deferred, 1 corrupt"
    assert format_table([]) == "Mail queue is empty"
