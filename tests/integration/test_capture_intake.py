"""Capture intake: the 250 follows the durable Maildir write, not the index; whoever reads
after a 250 still finds the message, and a crash with index entries pending loses none.

The index is held up the way another process's long transaction would hold it: a real
SQLite connection keeps its write lock.
"""

from __future__ import annotations

import asyncio
import json
import smtplib
import sqlite3
import threading
import time
from pathlib import Path

import aiohttp
import pytest
import tracmail
from helpers import MESSAGE, eventually, submit, wait_for_port
from served import Served, mail

from relay.capture.maildir import CaptureStore
from relay.model import Envelope
from relay.record import Record
from relay.service import Relay

BOB = "bob@example.org"


class IndexLock:
    """SQLite's write lock on the index of the Maildir at ``root``, held until released."""

    def __init__(self, root: Path) -> None:
        self.db = sqlite3.connect(
            root / "index.sqlite3", timeout=10, isolation_level=None, check_same_thread=False
        )
        self.db.execute("BEGIN EXCLUSIVE")
        self._released = threading.Lock()

    def release(self, after: float = 0.0) -> None:
        """Let the index go (``after`` seconds from now, from another thread)."""
        if after:
            threading.Timer(after, self.release).start()
            return
        with self._released:
            if self.db.in_transaction:
                self.db.execute("ROLLBACK")

    def close(self) -> None:
        self.release()
        self.db.close()


def indexed(root: Path) -> int:
    """How many messages the index file holds, read as it is (no reconciling)."""
    with sqlite3.connect(root / "index.sqlite3") as db:
        return int(db.execute("SELECT count(*) FROM messages").fetchone()[0])


def record(queue_id: str, subject: str) -> Record:
    message = f"From: trac@example.org\r\nTo: {BOB}\r\nSubject: {subject}\r\n\r\nBody\r\n"
    envelope = Envelope(sender="trac@example.org", recipients=(BOB,), received_at=time.time())
    return Record(queue_id=queue_id, envelope=envelope, message=message.encode())


async def test_the_250_does_not_wait_for_the_index(make_config, start_relay) -> None:
    relay = await start_relay(make_config())
    await eventually(lambda: relay.capture.index.info("maildir"))
    lock = IndexLock(relay.capture.root)
    try:
        started = time.monotonic()
        _, reply = await asyncio.wait_for(submit(relay, [BOB]), 5)
        answered = time.monotonic() - started
    finally:
        lock.close()
    assert "queued as" in reply and answered < 2
    queue_id = reply.rsplit(" ", 1)[-1]
    assert await asyncio.to_thread(relay.capture.matching, "", timezone="UTC") == [queue_id]


async def test_the_store_api_reads_what_was_answered_250(make_config, start_relay) -> None:
    relay = await start_relay(make_config())
    store = relay.capture
    await eventually(lambda: store.index.info("maildir"))
    lock = IndexLock(store.root)
    try:
        _, reply = await asyncio.wait_for(submit(relay, [BOB]), 5)
        queue_id = reply.rsplit(" ", 1)[-1]
        lock.release(after=0.3)  # the reads below start while the index is still held
        found = await asyncio.to_thread(store.search, "subject:#1", timezone="UTC")
        assert [item["id"] for item in found.items] == [queue_id]
        assert await asyncio.to_thread(store.resolve, queue_id[:12]) == queue_id
        assert (await asyncio.to_thread(store.item, queue_id))["id"] == queue_id
        raw, meta = await asyncio.to_thread(store.read, queue_id)
        assert raw.endswith(b"Hello\r\n") and meta is not None and meta.recipients == (BOB,)
    finally:
        lock.close()


async def test_the_web_api_and_the_mail_verbs_read_what_was_answered_250(
    make_config, start_relay, capsys
) -> None:
    from relay.cli.main import main

    relay = await start_relay(make_config())
    store = relay.capture
    await eventually(lambda: store.index.info("maildir"))
    async with aiohttp.ClientSession(relay.web.url) as http:
        for reader in ("web", "cli"):
            lock = IndexLock(store.root)
            try:
                _, reply = await asyncio.wait_for(submit(relay, [BOB]), 5)
                queue_id = reply.rsplit(" ", 1)[-1]
                lock.release(after=0.3)
                if reader == "web":
                    async with http.get("/api/v1/messages", params={"q": "#1"}) as response:
                        listed = [item["id"] for item in (await response.json())["messages"]]
                else:  # another process's view: its own store on the same Maildir
                    args = ["mail", "list", "--store", str(store.root), "--json"]
                    assert await asyncio.to_thread(main, args) == 0
                    listed = [
                        item["id"] for item in json.loads(capsys.readouterr().out)["messages"]
                    ]
                assert queue_id in listed, reader
            finally:
                lock.close()


def test_the_pytest_plugin_reads_what_was_answered_250(tmp_path: Path) -> None:
    from relay.testing.capture import MailCapture

    capture = MailCapture.start(tmp_path)
    try:
        root = tmp_path / "mail"
        deadline = time.monotonic() + 10
        while not caught_up(root) and time.monotonic() < deadline:
            time.sleep(0.02)
        lock = IndexLock(root)
        try:
            with smtplib.SMTP(capture.host, capture.port, timeout=5) as client:
                client.sendmail("trac@example.org", [BOB], MESSAGE)
            lock.release(after=0.3)
            assert [message.subject for message in capture.messages] == ["#1"]
        finally:
            lock.close()
    finally:
        capture.close()


def caught_up(root: Path) -> bool:
    """True once the index records the Maildir's state (the start's catch-up ran)."""
    try:
        with sqlite3.connect(f"file:{root / 'index.sqlite3'}?mode=ro", uri=True) as db:
            return db.execute("SELECT count(*) FROM info WHERE key = 'maildir'").fetchone()[0] > 0
    except sqlite3.Error:
        return False


async def test_a_stop_indexes_what_is_pending(make_config) -> None:
    relay = Relay(make_config())
    await relay.start()
    store = relay.capture
    await eventually(lambda: store.index.info("maildir"))
    lock = IndexLock(store.root)
    try:
        for _ in range(3):
            await asyncio.wait_for(submit(relay, [BOB]), 5)
        lock.release(after=0.3)
        await relay.stop()  # releases the store: it waits for the index
        assert indexed(store.root) == 3
    finally:
        lock.close()
    assert not CaptureStore(store.root).refresh()  # in line: nothing for the next start to do


@pytest.mark.slow
async def test_a_kill_with_entries_pending_loses_nothing(tmp_path: Path) -> None:
    with Served(tmp_path) as served:
        root = tmp_path / "mail"
        await eventually(lambda: caught_up(root))
        lock = IndexLock(root)
        try:
            sent = await asyncio.wait_for(
                asyncio.gather(*(served.send(mail(f"number {n}")) for n in range(20))), 10
            )
            served.process.kill()  # SIGKILL right after the 250s, the index still held
        finally:
            lock.close()
        assert indexed(root) == 0  # every entry was still pending
        served.process.start()
        assert wait_for_port(served.web_port)
        await eventually(lambda: indexed(root) == 20)  # the start catches up with the Maildir
        async with (
            aiohttp.ClientSession(served.url) as http,
            http.get("/api/v1/messages", params={"limit": "100"}) as response,
        ):
            listed = await response.json()
    assert sorted(item["id"] for item in listed["messages"]) == sorted(sent)


def test_its_own_changes_keep_the_index_in_line(tmp_path: Path) -> None:
    root = tmp_path / "mail"
    store = CaptureStore(root)
    store.create()
    store.search("")
    for number in range(5):
        store.store(record(f"Q{number}", f"number {number}"))
    store.store(record("Q3", "number 3 again"))  # replaces its earlier copy
    assert store.delete(["Q1"]) == ["Q1"]
    assert not store.refresh()
    assert not CaptureStore(root).refresh()  # another process finds nothing to reconcile
    assert sorted(store.matching("", timezone="UTC")) == ["Q0", "Q2", "Q3", "Q4"]
    store.close()


def test_a_mail_client_moving_mail_while_entries_are_pending_is_noticed(tmp_path: Path) -> None:
    root = tmp_path / "mail"
    (first,) = tracmail.fill(root, 1)
    store = CaptureStore(root)
    assert store.matching("", timezone="UTC") == [first]
    lock = IndexLock(root)
    try:
        store.store(record("Q2", "pending"))
        moved = next((root / "new").glob(f"*Q{first}.*"))
        moved.rename(root / "cur" / f"{moved.name}:2,S")  # a mail client read it meanwhile
    finally:
        lock.close()
    raw, _ = store.read(first)
    assert raw.startswith(b"From: My Project")
    assert store.index.path_of(first) == f"cur/{moved.name}:2,S"
    store.close()
