"""Queue faults (security reference G.48-G.50 and section b, tests 4 and 5).

A full or read-only spool answers ``451 4.3.0`` after the final dot (never 250, never 5xx),
leaves nothing half-written where delivery looks, and the relay takes mail again as soon
as space returns. A torn, truncated or unreadable queue file is moved to ``corrupt/`` at
start-up with a log line, and the rest of the queue flows. The small disk is a real tmpfs
mounted by the test (we run as root in CI).
"""

from __future__ import annotations

import os
import subprocess
import threading
from pathlib import Path

import aiosmtplib
import pytest
from helpers import fill, port_of

from relay.model import Envelope
from relay.queue.record import Record, encode_record
from relay.queue.spool import Spool

from .flow import queued, submit, wait_for

MESSAGE = b"From: trac@example.org\r\nTo: dev@example.org\r\nSubject: %s\r\n\r\n%s\r\n"
RETRY = {"min_backoff": 0.2, "max_backoff": 0.5, "jitter": 0}


def message(name: str, size: int = 0) -> bytes:
    """A message called ``name`` with about ``size`` octets of body."""
    return MESSAGE % (name.encode(), (b"x" * 76 + b"\r\n") * (size // 78) + name.encode())


def subjects(upstream) -> list[str]:
    return [m.content.split(b"\r\n")[2].decode()[9:] for m in upstream.messages]


def leftovers(disk: Path) -> list[str]:
    """Files in the spool's scratch and incoming directories."""
    queue = disk / "queue"
    return sorted(os.listdir(queue / "tmp")) + sorted(os.listdir(queue / "incoming"))


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
    bad = sorted(name for name in PLANTED if not name.startswith("GOOD"))
    assert queued(relay) == {"corrupt": bad}
    assert caplog.text.count("corrupt queue file") == len(bad)
    assert os.listdir(spool.root / "tmp") == []
