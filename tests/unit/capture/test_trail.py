"""The line of a store's own Maildir changes: when the index's record of the Maildir's state
may move on, and what readers wait for. The Maildir's state is scripted (the seam); the
index is a real one."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from relay.capture.index import CaptureIndex
from relay.capture.trail import Step, Trail


class Maildir:
    """A scripted Maildir state: ``now`` is what the trail reads."""

    def __init__(self) -> None:
        self.now = "S0"

    def __call__(self) -> str:
        return self.now


@pytest.fixture
def index(tmp_path: Path) -> CaptureIndex:
    index = CaptureIndex(tmp_path / "index.sqlite3")
    with index.transaction():
        index.set_info("maildir", "S0")
    return index


def arrive(trail: Trail, maildir: Maildir, state: str, queue_id: str) -> Step:
    """A message file renamed into ``new/``: the Maildir goes to ``state``."""
    with trail.change((queue_id, f"new/{queue_id}")) as step:
        maildir.now = state
    return step


def index_them(trail: Trail, index: CaptureIndex, *steps: Step) -> None:
    with trail.transaction(index, steps) as settlement:
        for step in steps:
            settlement.holds(step)


def test_the_record_moves_on_only_over_changes_indexed_in_order(index: CaptureIndex) -> None:
    maildir = Maildir()
    trail = Trail(maildir)
    first, second = arrive(trail, maildir, "S1", "Q1"), arrive(trail, maildir, "S2", "Q2")
    assert trail.accounts_for("S0")  # only its own changes since: nothing to reconcile
    index_them(trail, index, second)
    assert index.info("maildir") == "S0"  # the first is not indexed yet
    index_them(trail, index, first)
    assert index.info("maildir") == "S2"
    assert trail.accounts_for("S2") and not trail.accounts_for("S1")


def test_a_change_behind_its_back_stops_the_record(index: CaptureIndex) -> None:
    maildir = Maildir()
    trail = Trail(maildir)
    first = arrive(trail, maildir, "S1", "Q1")
    maildir.now = "S2"  # a mail client moved a message
    assert not trail.accounts_for("S0")
    second = arrive(trail, maildir, "S3", "Q2")
    index_them(trail, index, first, second)
    assert index.info("maildir") == "S1"  # the next reader reconciles


def test_a_state_a_pending_change_also_ends_in_is_not_recorded(index: CaptureIndex) -> None:
    maildir = Maildir()
    trail = Trail(maildir)
    first = arrive(trail, maildir, "S1", "Q1")
    second = arrive(trail, maildir, "S1", "Q2")  # within the clock tick: the state stays
    index_them(trail, index, first)
    assert index.info("maildir") == "S0"  # "S1" would hide the second from other processes
    index_them(trail, index, second)
    assert index.info("maildir") == "S1"


def test_a_failed_write_leaves_the_record_and_wakes_the_readers(index: CaptureIndex) -> None:
    maildir = Maildir()
    trail = Trail(maildir)
    first = arrive(trail, maildir, "S1", "Q1")
    woke = threading.Event()
    reader = threading.Thread(target=lambda: (trail.wait(), woke.set()))
    reader.start()
    assert not woke.wait(0.1)  # a reader waits for what was stored before it asked
    with pytest.raises(RuntimeError), trail.transaction(index, [first]):
        raise RuntimeError("disk I/O error")
    reader.join(5)
    assert woke.is_set() and index.info("maildir") == "S0"
    assert trail.behind and not trail.accounts_for("S0")
    with trail.reconciling():
        pass
    assert not trail.behind
