"""Queue faults (security reference G.48-G.50 and section b, tests 4 and 5).

A full or read-only spool answers ``451 4.3.0`` after the final dot (never 250, never 5xx),
leaves nothing half-written where delivery looks, and the relay takes mail again as soon
as space returns. A torn, truncated or unreadable queue file is moved to ``corrupt/`` at
start-up with a log line, and the rest of the queue flows. The small disk is a real tmpfs
mounted by the test (we run as root in CI).
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import threading
import time
from pathlib import Path

import aiosmtplib
import pytest
from helpers import fill, port_of

from relay.model import Envelope
from relay.queue.spool import Spool
from relay.record import DeliveryState, Record, encode_record, encode_state

from .flow import queued, submit, wait_for

MESSAGE = b"From: trac@example.org\r\nTo: dev@example.org\r\nSubject: %s\r\n\r\n%s\r\n"
RETRY = {"min_backoff": 0.2, "max_backoff": 0.5, "jitter": 0}


def message(name: str, size: int = 0) -> bytes:
    """A message called ``name`` with about ``size`` octets of body."""
    return MESSAGE % (name.encode(), (b"x" * 76 + b"\r\n") * (size // 78) + name.encode())


def subjects(upstream) -> list[str]:
    return [m.content.split(b"\r\n")[2].decode()[9:] for m in upstream.messages]


def leftovers(disk: Path) -> list[str]:
    """Files in the spool's scratch directory, and those in incoming/ that are not empty
    (an empty one is a reservation for a message to come: relay/queue/slots.py)."""
    queue = disk / "queue"
    incoming = [entry.name for entry in os.scandir(queue / "incoming") if entry.stat().st_size]
    return sorted(os.listdir(queue / "tmp")) + sorted(incoming)


async def refused_with_451(port: int, data: bytes) -> None:
    with pytest.raises(aiosmtplib.SMTPDataError) as refused:
        await submit(port, data)
    assert refused.value.code == 451 and refused.value.message.startswith("4.3.0")


async def test_full_disk_is_451_at_data_and_mail_flows_again_with_space(
    relay_for, upstream, small_disk, caplog
):
    relay = await relay_for(upstream, queue={"path": str(small_disk / "queue"), "retry": RETRY})
    port = port_of(relay)
    assert (await submit(port, message("before"))).startswith("2.0.0")
    await wait_for(lambda: upstream.messages)
    filler = fill(small_disk)
    await refused_with_451(port, message("while-full", 20_000))
    assert leftovers(small_disk) == []  # nothing half-written where delivery could see it
    filler.unlink()
    assert (await submit(port, message("while-full", 20_000))).startswith("2.0.0")
    await wait_for(lambda: len(upstream.messages) == 2)
    assert subjects(upstream) == ["before", "while-full"]
    assert "could not store a message" in caplog.text


async def test_full_disk_during_delivery_bookkeeping_loses_nothing(
    relay_for, upstream, small_disk, caplog
):
    # The upstream defers the first attempt only once the disk is full, so the relay
    # cannot write the delivery state; it must keep the message and try again.
    answer = threading.Event()
    first = [True]

    def defer_once_disk_is_full(envelope):
        if first[0]:
            first[0] = False
            answer.wait(10)
            return "451 4.3.0 try again"
        return None

    upstream.data_reply = defer_once_disk_is_full
    relay = await relay_for(upstream, queue={"path": str(small_disk / "queue"), "retry": RETRY})
    assert (await submit(port_of(relay), message("kept"))).startswith("2.0.0")
    filler = fill(small_disk)
    answer.set()
    await wait_for(lambda: "cannot write" in caplog.text)
    await refused_with_451(port_of(relay), message("refused meanwhile"))
    filler.unlink()
    await wait_for(lambda: upstream.messages)
    await wait_for(lambda: not queued(relay))
    assert subjects(upstream) == ["kept"]


async def test_read_only_spool_is_451_and_recovers(relay_for, upstream, small_disk):
    relay = await relay_for(upstream, queue={"path": str(small_disk / "queue"), "retry": RETRY})
    subprocess.run(["mount", "-o", "remount,ro", str(small_disk)], check=True)
    try:
        await refused_with_451(port_of(relay), message("read-only"))
    finally:
        subprocess.run(["mount", "-o", "remount,rw", str(small_disk)], check=True)
    assert (await submit(port_of(relay), message("writable"))).startswith("2.0.0")
    await wait_for(lambda: upstream.messages)
    assert subjects(upstream) == ["writable"]


def to(upstream, rcpt: str) -> list[str]:
    """Subjects of the messages the upstream took for ``rcpt``."""
    pairs = zip(upstream.messages, subjects(upstream), strict=True)
    return [subject for received, subject in pairs if rcpt in received.recipients]


async def test_full_disk_after_a_partial_delivery_never_sends_the_accepted_recipient_again(
    relay_for, upstream, small_disk, caplog
):
    # The upstream takes ann and defers bob; the disk fills while it answers the first
    # time, so the delivery state cannot be written. ann is marked done in the queue file
    # in place (no new blocks): she gets one copy, and the relay backs off instead of
    # retrying every min_backoff.
    answer, first, bob_tries, bob_welcome = threading.Event(), [True], [], threading.Event()

    def defer_bob(address):
        if address.startswith("bob@"):
            bob_tries.append(time.monotonic())
            return None if bob_welcome.is_set() else "451 4.2.1 mailbox busy, try later"
        return None

    def answer_once_disk_is_full(envelope):
        if first[0]:
            first[0] = False
            answer.wait(10)

    upstream.rcpt_reply, upstream.data_reply = defer_bob, answer_once_disk_is_full
    retry = {"min_backoff": 0.1, "max_backoff": 30, "jitter": 0}
    relay = await relay_for(upstream, queue={"path": str(small_disk / "queue"), "retry": retry})
    both = ("ann@example.org", "bob@example.org")
    assert (await submit(port_of(relay), message("partial"), recipients=both)).startswith("2.0.0")
    filler = fill(small_disk)
    answer.set()
    await wait_for(lambda: "cannot write" in caplog.text)
    await asyncio.sleep(2)  # at min_backoff for ever this would be some 20 tries
    assert to(upstream, "ann@example.org") == ["partial"]
    assert len(bob_tries) <= 6  # 0.1, 0.2, 0.4, 0.8 s apart ...
    assert "status=sent" in caplog.text and "next try in" in caplog.text
    await relay.stop()  # what it remembers in memory is gone; the mark on disk is not
    filler.unlink()
    bob_welcome.set()
    relay = await relay_for(upstream, queue={"path": str(small_disk / "queue"), "retry": retry})
    await wait_for(lambda: not queued(relay))
    assert to(upstream, "ann@example.org") == ["partial"]
    assert to(upstream, "bob@example.org") == ["partial"]


async def test_a_quota_file_that_cannot_be_written_never_resends_the_first_transaction(
    relay_for, upstream, small_disk, caplog
):
    # One recipient per transaction and a quota: ann's transaction goes, then the disk is
    # full when bob's send must be counted in the quota file before it goes.
    in_data, answer, first = threading.Event(), threading.Event(), [True]

    def answer_once_disk_is_full(envelope):
        if first[0]:
            first[0] = False
            in_data.set()  # ann's send is counted on disk by now
            answer.wait(10)

    upstream.data_reply = answer_once_disk_is_full
    relay = await relay_for(
        upstream,
        queue={"path": str(small_disk / "queue"), "retry": RETRY},
        upstream={"max_recipients_per_message": 1, "quota": {"messages": 100}},
    )
    both = ("ann@example.org", "bob@example.org")
    assert (await submit(port_of(relay), message("split"), recipients=both)).startswith("2.0.0")
    await wait_for(in_data.is_set)
    filler = fill(small_disk)
    answer.set()
    await wait_for(lambda: "cannot count the send" in caplog.text)
    await asyncio.sleep(1)
    assert to(upstream, "ann@example.org") == ["split"] and to(upstream, "bob@example.org") == []
    filler.unlink()
    await wait_for(lambda: not queued(relay))
    assert to(upstream, "ann@example.org") == ["split"]
    assert to(upstream, "bob@example.org") == ["split"]


async def test_a_capture_copy_that_cannot_be_written_never_sends_the_message_again(
    relay_for, upstream, small_disk, tmp_path, caplog
):
    relay = await relay_for(
        upstream,
        queue={"path": str(tmp_path / "queue"), "retry": RETRY},
        capture={"enabled": True, "path": str(small_disk / "mail")},
    )
    port = port_of(relay)
    assert (await submit(port, message("before"))).startswith("2.0.0")
    await wait_for(lambda: os.listdir(small_disk / "mail" / "new"))
    filler = fill(small_disk)
    names = [f"full-{n}" for n in range(5)]
    for name in names:
        assert (await submit(port, message(name))).startswith("2.0.0")
    await wait_for(lambda: len(upstream.messages) == 6)
    await wait_for(lambda: not queued(relay))
    await asyncio.sleep(1)  # retried after min_backoff (0.2 s), they would come again
    assert subjects(upstream) == ["before", *names]
    assert caplog.text.count("capture copy not stored") == 5
    exposition = relay.metrics.exposition().decode()
    assert "notify_relay_capture_failures_total 5.0" in exposition
    filler.unlink()
    assert (await submit(port, message("after"))).startswith("2.0.0")
    await wait_for(lambda: len(os.listdir(small_disk / "mail" / "new")) == 2)
    assert subjects(upstream) == ["before", *names, "after"]


async def test_a_queue_file_of_version_1_is_delivered_to_who_is_left(relay_for, upstream, tmp_path):
    # written before delivery marks existed: ann was done according to the state file
    spool = Spool(tmp_path / "queue")
    spool.create()
    envelope = Envelope(sender="trac@example.org", recipients=("ann@example.org", "bob@x.org"))
    data = encode_record(Record(queue_id="OLD", envelope=envelope, message=message("old")))
    data = data.replace(b"queue/2 ", b"queue/1 ", 1).rsplit(b"\n", 2)[0] + b"\n"
    (spool.root / "deferred" / "OLD").write_bytes(data)
    (spool.root / "state" / "OLD.json").write_bytes(
        encode_state(DeliveryState(attempts=1, done=("ann@example.org",)))
    )
    relay = await relay_for(upstream, queue={"path": str(tmp_path / "queue"), "retry": RETRY})
    await wait_for(lambda: not queued(relay))
    assert [m.recipients for m in upstream.messages] == [["bob@x.org"]]


def record(queue_id: str) -> bytes:
    envelope = Envelope(sender="trac@example.org", recipients=("dev@example.org",))
    return encode_record(Record(queue_id=queue_id, envelope=envelope, message=message(queue_id)))


def flipped(data: bytes) -> bytes:
    middle = data.index(b"Subject: ")
    return data[:middle] + b"s" + data[middle + 1 :]


#: name -> (directory, record bytes, delivery state bytes or None)
PLANTED = {
    "TRUNCATED": ("incoming", record("TRUNCATED")[:-60], None),
    "NOEND": ("incoming", record("NOEND").rsplit(b"end ", 1)[0], None),
    "CHECKSUM": ("incoming", flipped(record("CHECKSUM")), None),
    "EMPTY": ("incoming", b"", None),
    "FOREIGN": ("incoming", b"From MAILER-DAEMON Thu Jan 1 00:00:00 1970\n", None),
    "BADSTATE": ("deferred", record("BADSTATE"), b'{"attempts": 1, "done": ['),
    "GOOD1": ("incoming", record("GOOD1"), None),
    "GOOD2": ("deferred", record("GOOD2"), None),
}


async def test_corrupt_queue_files_are_quarantined_and_the_rest_flows(
    relay_for, upstream, tmp_path, caplog
):
    spool = Spool(tmp_path / "queue")
    spool.create()
    for queue_id, (where, data, state) in PLANTED.items():
        (spool.root / where / queue_id).write_bytes(data)
        if state is not None:
            (spool.root / "state" / f"{queue_id}.json").write_bytes(state)
    # a write interrupted by kill -9 (G.48): never delivered, cleaned at start
    (spool.root / "tmp" / "incoming-PARTIAL").write_bytes(record("PARTIAL")[:100])
    relay = await relay_for(upstream)
    await wait_for(lambda: len(upstream.messages) == 2)
    await wait_for(lambda: set(queued(relay)) == {"corrupt"})
    assert sorted(subjects(upstream)) == ["GOOD1", "GOOD2"]
    # an empty file in incoming/ is a reservation (relay/queue/slots.py): removed at start
    bad = sorted(name for name in PLANTED if not name.startswith(("GOOD", "EMPTY")))
    assert queued(relay) == {"corrupt": bad}
    assert not (spool.root / "incoming" / "EMPTY").exists()
    # a file cut short in incoming/ was being written when its writer died: never answered
    # 250, kept all the same
    unfinished = caplog.text.count("unfinished queue file")
    assert unfinished == 2  # TRUNCATED, NOEND
    assert caplog.text.count("corrupt queue file") + unfinished == len(bad)
    assert os.listdir(spool.root / "tmp") == []


async def test_a_queue_file_still_being_written_waits_for_its_writer(relay_for, upstream):
    # a receive worker writes into a file it reserved in incoming/ (relay/queue/slots.py):
    # a rescan that reads it half-written must neither quarantine nor deliver it
    relay = await relay_for(upstream, queue={"retry": RETRY})
    assert relay.manager is not None
    spool = relay.manager.spool
    data, path = record("INFLIGHT"), spool.root / "incoming" / "INFLIGHT"
    path.write_bytes(data[: len(data) // 2])
    await relay.manager.rescan()
    await asyncio.sleep(0.5)
    assert path.read_bytes() == data[: len(data) // 2]
    assert os.listdir(spool.root / "corrupt") == [] and upstream.messages == []
    with path.open("ab") as rest:  # the write finishes; its writer wakes delivery
        rest.write(data[len(data) // 2 :])
    relay.manager.submit("INFLIGHT")
    await wait_for(lambda: subjects(upstream) == ["INFLIGHT"])
