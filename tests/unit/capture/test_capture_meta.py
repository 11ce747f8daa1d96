"""Capture metadata: a frozen value with a versioned file form that still reads today's files."""

from __future__ import annotations

import json

import pytest

from relay.capture.maildir import CaptureStore
from relay.capture.meta import META_VERSION, CaptureMeta
from relay.model import Envelope, TraceEntry
from relay.record import Record

#: A metadata file as notify-relay wrote it before the format had a version.
UNVERSIONED = {
    "id": "00000000000A1META1",
    "sender": "trac@example.org",
    "recipients": ["bob@example.org"],
    "mail_options": ["BODY=8BITMIME"],
    "received_at": 1700000000.5,
    "peer": "127.0.0.1:50000",
    "helo": "trac.example.org",
    "trace": [["smtp_default_domain", "bob -> bob@example.org"]],
    "filters": {"bob@example.org": {"labels": ["trac"]}},
    "timeline": [{"at": 1700000001.0, "status": "sent"}],
    "captured_at": 1700000000.75,
    "releases": [{"at": 1700000100.0, "status": "sent"}],
}


def test_an_unversioned_file_reads_and_writes_back_with_a_version() -> None:
    meta = CaptureMeta.decode(json.dumps(UNVERSIONED).encode())
    assert meta.sender == "trac@example.org" and meta.recipients == ("bob@example.org",)
    assert meta.trace == (("smtp_default_domain", "bob -> bob@example.org"),)
    written = json.loads(meta.encode())
    assert written == {"version": META_VERSION, **UNVERSIONED}
    assert CaptureMeta.decode(meta.encode()) == meta
    assert meta.as_dict() == UNVERSIONED


def test_a_newer_version_or_a_wrong_shape_is_refused() -> None:
    with pytest.raises(ValueError, match="version 99"):
        CaptureMeta.decode(json.dumps({**UNVERSIONED, "version": 99}).encode())
    with pytest.raises(ValueError, match="recipients"):
        CaptureMeta.decode(json.dumps({**UNVERSIONED, "recipients": "bob"}).encode())


def test_the_store_writes_versioned_metadata_and_a_release_adds_to_it(tmp_path) -> None:
    store = CaptureStore(tmp_path / "mail")
    store.create()
    envelope = Envelope(sender="trac@example.org", recipients=("bob@example.org",))
    trace = (TraceEntry("smtp_from", "set From"),)
    message = b"From: trac@example.org\r\nSubject: meta\r\n\r\nHi\r\n"
    store.store(
        Record(queue_id="00000000000A1META2", envelope=envelope, message=message, trace=trace)
    )
    path = tmp_path / "mail" / "meta" / "00000000000A1META2.json"
    assert json.loads(path.read_bytes())["version"] == META_VERSION
    store.record_release("00000000000A1META2", [{"at": 1.0, "status": "sent"}])
    meta = CaptureMeta.decode(path.read_bytes())
    assert meta.releases == ({"at": 1.0, "status": "sent"},) and meta.trace == (
        ("smtp_from", "set From"),
    )


def stored_message(root, queue_id: str, meta: bytes | None) -> None:
    """A Maildir message ``queue_id`` whose metadata file holds ``meta`` (None: no file)."""
    for sub in ("new", "cur", "tmp", "meta"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    (root / "new" / f"1700000000.M0P1Q{queue_id}.host").write_bytes(b"Subject: old\r\n\r\nHi\r\n")
    if meta is not None:
        (root / "meta" / f"{queue_id}.json").write_bytes(meta)


def test_what_the_store_writes_it_reads_back_as_the_same_value(tmp_path) -> None:
    store = CaptureStore(tmp_path / "mail")
    store.create()
    envelope = Envelope(
        sender="trac@example.org",
        recipients=("bob@example.org", "carol@example.org"),
        mail_options=("BODY=8BITMIME",),
        received_at=1700000000.25,
        peer="[127.0.0.1]:4000",
        helo="trac",
    )
    record = Record(
        queue_id="00000000000A1META3",
        envelope=envelope,
        message=b"Subject: round trip\r\n\r\nHi\r\n",
        trace=(TraceEntry("smtp_from", "set From"),),
        filters={"bob@example.org": {"labels": ["trac"], "archived": True}},
        original=b"Subject: round trip\n\nHi\n",
    )
    attempt = {"at": 1.0, "relay": "up:587", "recipients": ["bob@example.org"], "status": "sent"}
    store.store(record, timeline=[attempt])
    raw, meta = store.read(record.queue_id)
    assert raw == record.message and isinstance(meta, CaptureMeta)
    written = CaptureMeta.of(record, timeline=[attempt], captured_at=meta.captured_at)
    assert meta == written and meta.original_kept and meta.timeline == (attempt,)
    store.record_release(record.queue_id, [{**attempt, "at": 2.0}])
    _, released = store.read(record.queue_id)
    assert released == written.released([{**attempt, "at": 2.0}])


def test_an_unversioned_file_reads_from_the_store_into_the_typed_value(tmp_path) -> None:
    root = tmp_path / "mail"
    stored_message(root, UNVERSIONED["id"], json.dumps(UNVERSIONED).encode())
    _, meta = CaptureStore(root).read(UNVERSIONED["id"])
    assert meta == CaptureMeta(
        id="00000000000A1META1",
        sender="trac@example.org",
        recipients=("bob@example.org",),
        mail_options=("BODY=8BITMIME",),
        received_at=1700000000.5,
        peer="127.0.0.1:50000",
        helo="trac.example.org",
        trace=(("smtp_default_domain", "bob -> bob@example.org"),),
        filters={"bob@example.org": {"labels": ["trac"]}},
        timeline=({"at": 1700000001.0, "status": "sent"},),
        captured_at=1700000000.75,
        releases=({"at": 1700000100.0, "status": "sent"},),
    )


def test_an_older_file_without_the_optional_fields_reads_with_their_defaults(tmp_path) -> None:
    root = tmp_path / "mail"
    oldest = {"id": "Q9", "sender": "a@example.org", "recipients": ["b@example.org"]}
    stored_message(root, "Q9", json.dumps(oldest).encode())
    _, meta = CaptureStore(root).read("Q9")
    assert meta == CaptureMeta(id="Q9", sender="a@example.org", recipients=("b@example.org",))
    assert meta.trace == () and meta.timeline == () and meta.received_at == 0.0


def test_a_message_without_metadata_reads_as_none(tmp_path) -> None:
    root = tmp_path / "mail"
    stored_message(root, "Q7", None)
    stored_message(root, "Q8", b"not JSON")
    store = CaptureStore(root)
    assert store.read("Q7") == (b"Subject: old\r\n\r\nHi\r\n", None)
    assert store.read("Q8")[1] is None


def test_a_file_of_a_future_version_is_refused_naming_file_and_version(tmp_path, caplog) -> None:
    root = tmp_path / "mail"
    stored_message(root, "Q6", json.dumps({**UNVERSIONED, "version": META_VERSION + 1}).encode())
    store = CaptureStore(root)
    refused = f"{root / 'meta' / 'Q6.json'}: capture metadata version {META_VERSION + 1} is newer"
    assert [item["id"] for item in store.search("").items] == []  # the index leaves it out
    assert "Q6: capture index: cannot index" in caplog.text and refused in caplog.text
    assert store.read("Q6") is None  # so no reader gets a guess at what it means
    with pytest.raises(ValueError, match=refused):
        store.load("Q6", next((root / "new").iterdir()).relative_to(root).as_posix())
