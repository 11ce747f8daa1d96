"""Queue files reserved ahead of need (relay/queue/slots.py), on a real directory."""

from __future__ import annotations

import logging
import os
import shutil
import stat
import subprocess
import sys
import time

import pytest

from relay.model import Envelope
from relay.queue import listing
from relay.queue.slots import Slots
from relay.queue.spool import QueueState, Spool
from relay.record import Record

INCOMING = QueueState.INCOMING


@pytest.fixture
def spool(tmp_path):
    spool = Spool(tmp_path / "queue")
    spool.create()
    return spool


@pytest.fixture
def started(spool):
    made: list[Slots] = []

    def start(**options) -> Slots:
        slots = Slots(spool, **options)
        slots.start()
        made.append(slots)
        return slots

    yield start
    for slots in made:
        slots.stop()


def record(queue_id: str) -> Record:
    envelope = Envelope(sender="trac@example.org", recipients=("dev@example.org",), received_at=1.0)
    return Record(queue_id=queue_id, envelope=envelope, message=b"Subject: s\r\n\r\nbody\r\n")


def files(spool: Spool) -> set[str]:
    """The names in incoming/ (not a dot name: a reservation in the making)."""
    return {name for name in os.listdir(spool.root / INCOMING.value) if name[0] != "."}


def eventually(predicate, timeout: float = 10.0):
    deadline = time.monotonic() + timeout
    while not (result := predicate()):
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)
    return result


def test_reserved_files_are_empty_owner_only_and_not_messages(spool, started):
    umask = os.umask(0)
    try:
        slots = started(size=4)
    finally:
        os.umask(umask)
    taken = [slots.take() for _ in range(4)]
    assert None not in taken and len(set(taken)) == 4
    for queue_id in taken:
        info = spool.path(queue_id, INCOMING).stat()
        assert info.st_size == 0 and stat.S_IMODE(info.st_mode) == 0o600
    assert spool.ids(INCOMING) == [] and listing.read_entries(spool) == []


def test_a_message_written_into_its_reservation_is_queued_under_that_id(spool, started):
    slots = started(size=2)
    queue_id = slots.take()
    assert queue_id is not None
    reserved = slots.used(queue_id)
    assert reserved is not None and slots.used(queue_id) is None  # once
    spool.accept(record(queue_id), reserved=reserved)
    assert spool.ids(INCOMING) == [queue_id]
    assert spool.read(queue_id, INCOMING) == record(queue_id)


def test_a_cleared_reservation_is_written_whole_instead(spool, started):
    slots = started(size=1)
    queue_id = slots.take()
    assert queue_id is not None
    spool.path(queue_id, INCOMING).unlink()
    spool.accept(record(queue_id), reserved=slots.used(queue_id))
    assert spool.read(queue_id, INCOMING) == record(queue_id)


def test_the_pool_is_refilled_in_the_background(spool, started):
    slots = started(size=4)
    first = {slots.take() for _ in range(4)}
    fresh = eventually(slots.take)
    assert fresh not in first
    assert len(files(spool)) == 8 or eventually(lambda: len(files(spool)) == 8)


def test_old_reservations_are_not_handed_out_but_replaced(spool, started):
    slots = started(size=2, max_age=0.2)
    old = files(spool)
    time.sleep(0.3)
    assert slots.take() is None  # the caller writes this message the ordinary way
    fresh = eventually(slots.take)
    assert fresh not in old
    eventually(lambda: not old & files(spool))  # the stale files are removed


def test_a_reservation_given_back_unused_is_removed_and_not_handed_out_again(spool, started):
    # a message every recipient's filters discarded: its id is logged, its file never written
    slots = started(size=4)
    given_back = slots.take()
    assert given_back is not None
    slots.unused(given_back)
    eventually(lambda: given_back not in files(spool))
    assert slots.used(given_back) is None
    assert given_back not in {eventually(slots.take) for _ in range(8)}
    written = slots.take() or eventually(slots.take)
    reserved = slots.used(written)
    assert reserved is not None
    slots.unused(written)  # its store began: the file is the writer's
    time.sleep(0.2)
    assert written in files(spool)
    os.close(reserved)


def test_reserved_files_are_0600_and_writable_whatever_the_umask(spool):
    # a umask without u+w (0277) made them 0400: a relay not run as root then answered
    # 451 to every message written into one (opening it for writing was refused)
    old = os.umask(0o277)
    try:
        slots = Slots(spool, size=2)
        slots.start()
        queue_id = slots.take()
    finally:
        os.umask(old)
    try:
        assert queue_id is not None
        mode = stat.S_IMODE(spool.path(queue_id, INCOMING).stat().st_mode)
        assert mode == 0o600, oct(mode)
    finally:
        slots.stop()


def test_stop_removes_the_unused_reservations_and_start_the_rest(spool):
    slots = Slots(spool, size=3)
    slots.start()
    taken = slots.take()
    assert taken is not None
    slots.stop()
    assert files(spool) == {taken}  # a write into it might still be under way
    spool.recover()  # at the next start, nothing else running
    assert files(spool) == set()


def test_when_nothing_can_be_reserved_take_answers_none_and_says_why(spool, started, caplog):
    shutil.rmtree(spool.root / INCOMING.value)
    (spool.root / INCOMING.value).write_text("not a directory")
    with caplog.at_level(logging.WARNING, logger="notify-relay"):
        slots = started(size=2)
    assert slots.take() is None
    assert "cannot reserve files in" in caplog.text and "writing each message whole" in caplog.text


def test_a_message_written_whole_is_0600_whatever_the_umask(spool):
    # 0400 (umask 0277) would refuse marking delivered recipients in place to a non-root relay
    old = os.umask(0o277)
    try:
        spool.accept(record("0000000000000ABCDE"))
    finally:
        os.umask(old)
    mode = stat.S_IMODE(spool.path("0000000000000ABCDE", INCOMING).stat().st_mode)
    assert mode == 0o600, oct(mode)


RESERVE_AND_DIE = """
import os, sys
from pathlib import Path
from relay.queue.slots import Slots
from relay.queue.spool import Spool
slots = Slots(Spool(Path(sys.argv[1])), size=3)
slots.start()
print(" ".join(filter(None, (slots.take() for _ in range(3)))), flush=True)
if sys.argv[2] == "die":
    os._exit(0)  # as after kill -9: no stop, its files stay and its locks go
sys.stdin.read()  # alive until told
"""


def reserve_in_a_process(spool: Spool, then: str) -> tuple[subprocess.Popen[str], set[str]]:
    """Another process reserves three files; ``then`` "die" or "live" (until stdin closes)."""
    child = subprocess.Popen(
        [sys.executable, "-c", RESERVE_AND_DIE, str(spool.root), then],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert child.stdout is not None
    return child, set(child.stdout.readline().split())


def test_a_start_removes_what_a_dead_process_reserved_and_nothing_a_live_one_did(
    spool, started, caplog
):
    live, held = reserve_in_a_process(spool, "live")
    dead, orphans = reserve_in_a_process(spool, "die")  # (its start leaves the live's alone)
    dead.wait(30)
    try:
        assert len(orphans) == len(held) == 3 and orphans | held <= files(spool)
        with caplog.at_level(logging.INFO, logger="notify-relay"):
            started(size=2)
        assert not orphans & files(spool)
        assert held <= files(spool)  # locked by their live owner
        # (the dead one's refill thread may have reserved more before it died)
        assert "files reserved by a process that ended" in caplog.text
        assert all(queue_id in caplog.text for queue_id in orphans)
        assert not any(queue_id in caplog.text for queue_id in held)
    finally:
        live.communicate("", timeout=30)
