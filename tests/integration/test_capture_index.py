"""The capture store's index on disk: catching up with the Maildir, retention, rebuilds,
and (slow) 100,000 generated messages listed and searched, then rebuilt from scratch."""

from __future__ import annotations

import json
import os
import sqlite3
import time
from pathlib import Path

import pytest
import tracmail

from relay.capture.maildir import CaptureStore
from relay.model import Envelope
from relay.record import Record

ALICE = "alice@example.org"


def record(queue_id: str, subject: str, received: float) -> Record:
    message = f"From: trac@example.org\r\nTo: {ALICE}\r\nSubject: {subject}\r\n\r\nBody\r\n"
    envelope = Envelope(sender="trac@example.org", recipients=(ALICE,), received_at=received)
    return Record(queue_id=queue_id, envelope=envelope, message=message.encode())


def ids(store: CaptureStore, query: str = "", **options: object) -> list[str]:
    return [item["id"] for item in store.search(query, limit=500, **options).items]


def test_the_index_catches_up_with_changes_behind_its_back(tmp_path: Path) -> None:
    root = tmp_path / "mail"
    generated = tracmail.fill(root, 12)
    store = CaptureStore(root)
    assert ids(store) == generated[::-1]  # indexed on first use, newest first
    moved = next((root / "new").glob(f"*Q{generated[0]}.*"))
    moved.rename(root / "cur" / f"{moved.name}:2,S")  # a mail client read it
    next((root / "new").glob(f"*Q{generated[1]}.*")).unlink()  # someone removed one
    found = ids(store)
    assert generated[1] not in found and generated[0] in found and len(found) == 11
    raw, meta = store.read(generated[0])
    assert raw.startswith(b"From: My Project") and meta.id == generated[0]


def test_storing_an_id_again_replaces_its_earlier_copy(tmp_path: Path) -> None:
    store = CaptureStore(tmp_path / "mail")
    store.create()
    first = record("Q1", "first attempt", 100.0)
    store.store(first, timeline=[{"at": 101.0, "recipients": [ALICE], "status": "deferred"}])
    store.store(first, timeline=[{"at": 102.0, "recipients": [ALICE], "status": "sent"}])
    (item,) = store.search("").items  # a reader waits for the index: the copy is gone
    assert item["id"] == "Q1" and item["status"] == "sent"
    assert len(list((tmp_path / "mail" / "new").iterdir())) == 1


def test_trouble_after_the_message_is_on_disk_is_logged_not_raised(tmp_path: Path, caplog) -> None:
    # the handler answers 451 to whatever store() raises: once the message file is durable,
    # a failure (here: retention cannot remove an older message) must not become that refusal
    store = CaptureStore(tmp_path / "mail", max_messages=1)
    store.create()
    store.store(record("Q1", "older", 100.0))
    assert ids(store) == ["Q1"]  # indexed: retention will want to remove it
    (older,) = (tmp_path / "mail" / "new").iterdir()
    older.unlink()
    older.mkdir()  # unlink() now fails
    (older / "in the way").touch()
    stored = store.store(record("Q2", "newer", 200.0))
    assert b"Subject: newer" in stored.read_bytes()
    assert ids(store) == ["Q2"]
    assert "Q2: capture index: " in caplog.text  # retention ran before the reader woke


def test_a_file_the_index_cannot_read_is_left_out_with_a_log_line(tmp_path: Path, caplog) -> None:
    root = tmp_path / "mail"
    generated = tracmail.fill(root, 3)
    meta = root / "meta" / f"{generated[1]}.json"
    meta.write_text(json.dumps({**json.loads(meta.read_text()), "received_at": "yesterday"}))
    store = CaptureStore(root)
    assert ids(store) == [generated[2], generated[0]]
    assert f"{generated[1]}: capture index: cannot index" in caplog.text


def test_retention_keeps_the_newest_and_drops_the_old(tmp_path: Path) -> None:
    store = CaptureStore(tmp_path / "mail", max_messages=3, max_age=3600)
    store.create()
    now = time.time()
    for number in range(5):
        store.store(record(f"Q{number}", f"number {number}", now - 60 * (5 - number)))
    assert ids(store) == ["Q4", "Q3", "Q2"]
    assert not (tmp_path / "mail" / "meta" / "Q0.json").exists()
    assert store.prune(now=now + 3600 - 150) == ["Q2"]
    assert ids(store) == ["Q4", "Q3"]


def test_a_deleted_or_foreign_index_is_rebuilt(tmp_path: Path) -> None:
    root = tmp_path / "mail"
    generated = tracmail.fill(root, 5)
    for damage in (None, "delete", "garbage", "other version"):
        if damage == "delete":
            (root / "index.sqlite3").unlink()
        elif damage == "garbage":
            (root / "index.sqlite3").write_bytes(b"not a database\n" * 512)
            for suffix in ("-wal", "-shm"):
                Path(f"{root / 'index.sqlite3'}{suffix}").unlink(missing_ok=True)
        elif damage == "other version":
            with sqlite3.connect(root / "index.sqlite3") as db:
                db.execute("PRAGMA user_version = 99")
        store = CaptureStore(root)
        assert ids(store) == generated[::-1], damage
        store.close()


def test_deleting_by_query_keeps_the_rest(tmp_path: Path) -> None:
    root = tmp_path / "mail"
    tracmail.fill(root, 30)
    store = CaptureStore(root)
    starred = store.matching("is:starred", recipient=ALICE, timezone="UTC")
    assert len(starred) == 5  # n % 7 == 0 for n < 30
    assert sorted(store.delete(starred)) == sorted(starred)
    assert store.search("is:starred", recipient=ALICE).total == 0
    assert store.search("").total == 25


@pytest.mark.slow
@pytest.mark.timeout(1200)
def test_one_hundred_thousand_messages(tmp_path: Path) -> None:
    count = 100_000
    root = tmp_path / "mail"
    generated = tracmail.fill(root, count)
    store = CaptureStore(root)
    started = time.monotonic()
    assert store.reindex(workers=os.cpu_count() or 1) == count
    built = time.monotonic() - started

    newest = store.search("", limit=50)
    assert newest.total == count and [i["id"] for i in newest.items] == generated[:-51:-1]
    # what tracmail.fill generates: ticket 1 + n % 5000, attachments at n % 50 == 0,
    # alice's filters star n % 7 == 0 and trash n % 11 == 0
    timings = {}
    expected = {
        'subject:"#42:"': 20,
        "has:attachment": 2000,
        "frobnicator -has:attachment": None,
        "from:@example.org": count,
        "to:bob@example.org": None,
    }
    for query, total in expected.items():
        started = time.monotonic()
        page = store.search(query)
        timings[query] = time.monotonic() - started
        assert page.exact and (total is None or page.total == total), query
    starred = store.search("is:starred -in:trash", recipient=ALICE)
    assert starred.total == len([n for n in range(count) if n % 7 == 0 and n % 11])
    assert all(item["view"]["starred"] for item in starred.items)
    assert max(timings.values()) < 2.0, timings  # the bench measures; this catches a collapse

    store.close()
    (root / "index.sqlite3").unlink()
    rebuilt = CaptureStore(root)
    assert rebuilt.refresh(workers=os.cpu_count() or 1)
    assert rebuilt.search('subject:"#42:"').total == 20
    assert rebuilt.search("").total == count
    print(f"\nbuilt the index of {count} messages in {built:.1f} s; searches: {timings}")


def test_the_mail_verbs_work_on_the_store_without_a_server(tmp_path: Path, capsys) -> None:
    from relay.cli.main import main

    root = tmp_path / "mail"
    generated = tracmail.fill(root, 8)
    store = ["--store", str(root)]
    assert main(["mail", "list", *store, "-q", "is:starred", "--as", ALICE]) == 0
    listed = capsys.readouterr().out
    assert generated[7] in listed and "starred" in listed and "-- 2 of 2 message(s)" in listed
    assert main(["mail", "show", *store, generated[0][:14]]) == 0
    assert "gmail of alice@example.org: trash" in capsys.readouterr().out
    assert main(["mail", "show", *store, "--raw", generated[0]]) == 0
    assert capsys.readouterr().out.startswith("From: My Project")
    assert main(["mail", "list", *store, "-q", "from:("]) == 2
    assert "expected a search term (column 7)" in capsys.readouterr().err
    assert main(["mail", "delete", *store, generated[1]]) == 0
    gone = "rfc822msgid:<1.2@trac.example.org>"  # generated[1], deleted above
    assert main(["mail", "wait", *store, "-q", gone, "--timeout", "0.2"]) == 1
    assert main(["mail", "wait", *store, "-q", "rfc822msgid:<2.3@trac.example.org>"]) == 0
    assert main(["mail", "reindex", *store]) == 0
    assert "indexed 7 message(s)" in capsys.readouterr().out
    assert main(["mail", "list", *store, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["total"] == 7
    assert main(["mail", "show", *store, "NOSUCH"]) == 1


def test_mail_release_is_guarded_and_goes_upstream(tmp_path: Path, capsys) -> None:
    from upstream import FakeUpstream

    from relay.cli.main import main

    root = tmp_path / "mail"
    (queue_id,) = tracmail.fill(root, 1)
    with FakeUpstream() as upstream:
        config = tmp_path / "relay.yaml"
        release = {
            "allowed": ["*@example.org"],
            "upstream": {"host": "127.0.0.1", "port": upstream.port, "tls": "none"},
        }
        config.write_text(json.dumps({"capture": {"path": str(root), "release": release}}))
        assert main(["mail", "release", "-c", str(config), queue_id, "--to", "eve@evil.test"]) == 1
        assert "eve@evil.test" in capsys.readouterr().err and not upstream.messages
        assert main(["mail", "release", "-c", str(config), queue_id]) == 0
        (received,) = upstream.wait_for(1)
    raw, meta = CaptureStore(root).read(queue_id)
    assert tuple(received.recipients) == meta.recipients and received.content == raw
    assert CaptureStore(root).search("").items[0]["status"] == "released"
