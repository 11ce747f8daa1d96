"""Queue file format and retry arithmetic."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from relay.model import Envelope, TraceEntry
from relay.queue.options import RetryConfig
from relay.queue.schedule import backoff, expired
from relay.record import (
    Attempt,
    CorruptRecord,
    DeliveryState,
    Record,
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
