"""Queue file format and retry arithmetic."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from relay.model import Envelope, TraceEntry
from relay.queue.options import RetryConfig
from relay.queue.schedule import backoff, expired
from relay.queue.spool import QueueState, Spool
from relay.record import (
    Attempt,
    CorruptRecord,
    DeliveryState,
    Record,
    UnfinishedRecord,
    decode_record,
    decode_state,
    encode_record,
    encode_state,
)

RECORD = Record(
    queue_id="ID1",
    envelope=Envelope(
        sender="", recipients=("a@x", "b@y"), mail_options=("BODY=8BITMIME",), received_at=1.5
    ),
    message=b"Subject: caf\xc3\xa9\r\n\r\nbody\r\n",
    trace=(TraceEntry("smtp_default_domain", "alice -> alice@x"),),
)


@given(message=st.binary(), recipients=st.lists(st.text(min_size=1), max_size=5))
def test_record_round_trips(message, recipients):
    record = Record(
        queue_id="X", envelope=Envelope(sender="s", recipients=tuple(recipients)), message=message
    )
    assert decode_record(encode_record(record)) == record


@pytest.mark.parametrize("cut", [1, 10, 30, -20, -1])
def test_truncated_record_is_detected(cut):
    data = encode_record(RECORD)
    with pytest.raises(CorruptRecord):
        decode_record(data[:cut])


def test_flipped_byte_is_detected():
    data = bytearray(encode_record(RECORD))
    data[-30] ^= 0x20
    with pytest.raises(CorruptRecord):
        decode_record(bytes(data))


#: A queue file as version 1 wrote it (before delivery marks): it must still load.
VERSION_1 = (
    b"notify-relay-queue/1 213 38\n"
    b'{"id": "661BD0EF728CA17B3A", "sender": "trac@example.org", "recipients": '
    b'["ann@example.org", "bob@example.org"], "mail_options": [], "received_at": '
    b'1700000000.0, "peer": "", "helo": "", "trace": [], "filters": {}}\n'
    b"Subject: old\r\n\r\nwritten by version 1\r\n\nend 4ed304ec\n"
)


@pytest.mark.parametrize("version", [2, 1])
def test_every_beginning_of_a_queue_file_is_unfinished_and_only_those(version):
    # a reader may see a file being written into its reservation: it must wait, not
    # quarantine it (relay/queue/slots.py)
    data = encode_record(RECORD) if version == 2 else VERSION_1
    for cut in range(len(data)):
        with pytest.raises(UnfinishedRecord):
            decode_record(data[:cut])
    decode_record(data)
    flipped = bytearray(data)
    flipped[len(data) // 2] ^= 0x20
    longer = [data + b"+\n"] if version == 2 else []  # version 1 reads up to its end line
    for damaged in (bytes(flipped), *longer, b"From nobody\n" + data, b"junk"):
        with pytest.raises(CorruptRecord) as raised:
            decode_record(damaged)
        assert not isinstance(raised.value, UnfinishedRecord), damaged[:40]


def test_a_version_1_file_still_loads_without_marks():
    record = decode_record(VERSION_1)
    assert record.envelope.recipients == ("ann@example.org", "bob@example.org")
    assert record.message == b"Subject: old\r\n\r\nwritten by version 1\r\n"
    assert record.delivered == frozenset() and not record.markable
    upgraded = decode_record(encode_record(record))
    assert upgraded == record and upgraded.markable


def test_marking_a_recipient_delivered_changes_one_byte_in_place(tmp_path):
    spool = Spool(tmp_path)
    spool.create()
    spool.accept(RECORD)
    path = spool.path("ID1", QueueState.INCOMING)
    before, inode = path.read_bytes(), path.stat().st_ino
    spool.mark_delivered(RECORD, QueueState.INCOMING, ["b@y"])
    after = path.read_bytes()
    assert len(after) == len(before) and path.stat().st_ino == inode
    changed = [i for i, (x, y) in enumerate(zip(before, after, strict=True)) if x != y]
    assert changed == [len(before) - 2]
    record, state = spool.load("ID1", QueueState.INCOMING)
    assert record.delivered == {"b@y"} and state.pending(record.envelope) == ("a@x",)


@pytest.mark.parametrize("marks", [b"-", b"-+-", b"-x", b"--"])
def test_bad_delivery_marks_are_detected(marks):
    data = encode_record(RECORD)
    with pytest.raises(CorruptRecord):
        decode_record(data[: -len(b"--\n")] + marks + (b"" if marks == b"--" else b"\n"))


def test_state_round_trips_and_pending_excludes_final_recipients():
    state = DeliveryState(
        attempts=2, next_attempt=9.0, done=("a@x",), last_reply="250 ok"
    ).with_attempt(
        Attempt(at=1.0, relay="r", recipients=("b@y",), status="deferred", reply="451 later")
    )
    assert decode_state(encode_state(state)) == state
    assert state.pending(RECORD.envelope) == ("b@y",)
    with pytest.raises(CorruptRecord):
        decode_state(b'{"attempts": 1')


def test_backoff_doubles_up_to_the_cap_with_jitter():
    retry = RetryConfig(min_backoff=300, max_backoff=4000, jitter=0)
    assert [backoff(n, retry) for n in (1, 2, 3, 4, 5)] == [300, 600, 1200, 2400, 4000]
    jittered = RetryConfig(min_backoff=300, max_backoff=4000, jitter=0.1)
    delays = {backoff(1, jittered, rng=random.Random(seed)) for seed in range(50)}
    assert all(270 <= delay <= 330 for delay in delays) and len(delays) > 1


def test_expiry_after_the_lifetime():
    retry = RetryConfig(lifetime=100)
    assert not expired(0, 100, retry) and expired(0, 100.5, retry)


def test_the_first_line_tells_a_file_cut_short_from_a_whole_one():
    from relay.model import Envelope
    from relay.record import Record, encode_record, unfinished_head

    envelope = Envelope(sender="a@example.org", recipients=("b@example.org",), received_at=1.0)
    data = encode_record(Record(queue_id="Q", envelope=envelope, message=b"body\r\n" * 50))
    assert not unfinished_head(data, len(data))
    for cut in (0, 5, 30, len(data) // 2, len(data) - 4):
        assert unfinished_head(data[:cut], cut), cut
    assert not unfinished_head(b"garbage\n", 8)  # not ours: quarantined, counted
