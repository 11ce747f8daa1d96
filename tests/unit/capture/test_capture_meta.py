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
