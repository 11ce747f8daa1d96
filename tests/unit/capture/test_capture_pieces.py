"""The pure pieces of capture: timeline and status, index entries, MIME parts, release guard."""

from __future__ import annotations

import asyncio

import pytest

from relay.capture.entry import entry_of, recipient_view, reversed_domain, state_key, state_of
from relay.capture.events import Events, MailEvent, MailEventKind
from relay.capture.message import contents, detail, link_inline_parts, part_payload
from relay.capture.meta import CaptureMeta
from relay.capture.release import ReleaseRefused, release_recipients
from relay.capture.timeline import DeliveryStatus, delivery_status, timeline
from relay.gmail import MessageState
from relay.gmail.samples import message_bytes

SENT = {
    "at": 20.0,
    "relay": "up[1.2.3.4]:587",
    "recipients": ["a@x"],
    "status": "sent",
    "reply": "250 ok",
}
DEFERRED = {**SENT, "at": 15.0, "recipients": ["b@x"], "status": "deferred", "reply": "451 later"}
HTML_MAIL = message_bytes(
    {
        "headers": {
            "From": "Trac <trac@example.org>",
            "To": "a@x",
            "Subject": "=?utf-8?q?caf=C3=A9?=",
        },
        "body": "plain words",
        "html": '<p>hi <img src="cid:logo@x"></p>',
        "attachments": [{"filename": "log.txt", "content_type": "text/plain", "size": 4}],
    }
)


def meta(**fields: object) -> CaptureMeta:
    """Metadata of message Q1 with ``fields`` (no sender or recipients unless given)."""
    return CaptureMeta(**{"id": "Q1", "sender": "", "recipients": (), **fields})


def test_status_is_the_last_word_per_recipient() -> None:
    assert delivery_status(meta()) is DeliveryStatus.CAPTURED
    assert delivery_status(meta(timeline=(SENT,))) is DeliveryStatus.SENT
    assert delivery_status(meta(timeline=(SENT, DEFERRED))) is DeliveryStatus.DEFERRED
    retried = {**DEFERRED, "at": 30.0, "status": "sent"}
    assert delivery_status(meta(timeline=(DEFERRED, retried))) is DeliveryStatus.SENT
    assert delivery_status(meta(releases=(SENT,), timeline=(DEFERRED,))).value == "released"


def test_timeline_lists_every_event_in_time_order() -> None:
    events = timeline(
        meta(
            received_at=10.0,
            peer="[127.0.0.1]:4000",
            helo="trac",
            captured_at=21.0,
            timeline=(SENT, DEFERRED),
            releases=({**SENT, "at": 40.0, "status": "deferred"},),
        )
    )
    assert [e["event"] for e in events] == [
        "received",
        "queued",
        "deferred",
        "sent",
        "captured",
        "release failed",
    ]
    assert events[0]["detail"] == "[127.0.0.1]:4000 trac"
    assert events[3]["detail"] == "250 ok" and events[3]["relay"] == "up[1.2.3.4]:587"
    assert timeline(None) == []


def test_entry_holds_the_list_item_words_addresses_and_states() -> None:
    filters = {
        "A@X": {
            "labels": ["Trac"],
            "archived": True,
            "read": True,
            "starred": False,
            "important": False,
            "category": None,
            "trashed": False,
        }
    }
    found = meta(recipients=("a@x", "b@y"), received_at=100.0, filters=filters)
    entry = entry_of("Q1", "new/f", HTML_MAIL, found, file_time=5.0)
    assert entry.received == 100.0 and entry.attachments == 1
    assert entry.item["subject"] == "café" and entry.item["from"]["name"] == "Trac"
    assert entry.item["snippet"] == "plain words" and entry.item["status"] == "captured"
    assert entry.words["subject"] == "café" and entry.words["filename"] == "log txt"
    assert ("from", "trac@example.org", "gro.elpmaxe.") in entry.addresses
    states = dict(entry.states)
    assert state_of(states["b@y"]) == MessageState()
    alice = recipient_view("a@x", states["a@x"])
    assert alice["archived"] and alice["read"] and alice["labels"] == ["Trac"]


def test_entry_without_metadata_uses_the_file_time() -> None:
    entry = entry_of("X1", "cur/f:2,S", HTML_MAIL, None, file_time=7.0)
    assert entry.received == 7.0 and entry.states == () and entry.item["recipients"] == []


def test_a_header_with_a_garbage_charset_is_indexed_as_raw_text() -> None:
    raw = b"From: a@x\r\nSubject: =?\xffutf-8?q?caf=C3=A9?=\r\n\r\nBody\r\n"
    entry = entry_of("Q1", "new/f", raw, meta(recipients=("b@y",), received_at=1.0), file_time=0)
    assert entry.size == len(raw) and "caf=C3=A9" in entry.item["subject"]
    assert ("deliveredto", "b@y", "y.") in entry.addresses and (
        "from",
        "a@x",
        "x.",
    ) in entry.addresses


def test_state_keys_round_trip() -> None:
    state = MessageState(labels=frozenset({"b", "a"}), unread=False, category="updates")
    assert state_of(state_key(state)) == state
    assert state_key(state) == state_key(
        MessageState(labels=frozenset({"a", "b"}), unread=False, category="updates")
    )


def test_reversed_domain_lets_one_range_find_subdomains() -> None:
    assert reversed_domain("bob@mail.example.org").startswith(reversed_domain("x@example.org"))
    assert not reversed_domain("bob@myexample.org").startswith(reversed_domain("x@example.org"))
    assert reversed_domain("postmaster") == ""


def test_contents_split_the_mime_tree() -> None:
    parsed = contents(HTML_MAIL)
    assert ("Subject", "café") in parsed.headers
    assert parsed.text == "plain words\n" and parsed.html.startswith("<p>hi")
    assert [p.filename for p in parsed.attachments] == ["log.txt"]
    part, payload = part_payload(HTML_MAIL, parsed.attachments[0].number)
    assert part.content_type == "text/plain" and payload == b"\0" * 4
    assert part_payload(HTML_MAIL, 99) is None


def deep(depth: int) -> bytes:
    """``depth`` multiparts inside each other: the stdlib parser recurses once per level."""
    opening = b"".join(
        b'Content-Type: multipart/mixed; boundary="d%d"\r\n\r\n--d%d\r\n' % (n, n)
        for n in range(depth)
    )
    closing = b"".join(b"\r\n--d%d--\r\n" % n for n in reversed(range(depth)))
    return b"Subject: deep\r\n" + opening + b"Content-Type: text/plain\r\n\r\nx\r\n" + closing


def test_a_message_nested_too_deep_is_shown_and_indexed_by_its_header() -> None:
    raw = deep(5000)
    entry = entry_of("Q1", "new/f", raw, meta(recipients=("b@y",)), file_time=1.0)
    assert entry.item["subject"] == "deep" and entry.unread is not None
    parsed = contents(raw)  # the message view: the header, and the body as one raw part
    assert ("Subject", "deep") in parsed.headers and parsed.text is None
    (part,) = parsed.parts
    _, payload = part_payload(raw, part.number)
    assert raw.endswith(payload)


def test_inline_images_point_at_their_parts() -> None:
    raw = (
        b'Content-Type: multipart/related; boundary="b"\r\n\r\n--b\r\n'
        b'Content-Type: text/html\r\n\r\n<img src="cid:logo@x"><img src="cid:other">\r\n--b\r\n'
        b"Content-Type: image/png\r\nContent-ID: <logo@x>\r\n\r\nPNG\r\n--b--\r\n"
    )
    parsed = contents(raw)
    linked = link_inline_parts(parsed.html, parsed.parts, lambda n: f"parts/{n}")
    assert linked == '<img src="parts/1"><img src="cid:other">'


def test_detail_adds_envelope_trace_and_timeline() -> None:
    found = meta(
        sender="trac@example.org",
        recipients=("a@x",),
        trace=(("smtp_from", "From set"),),
        received_at=1.0,
        captured_at=2.0,
    )
    shown = detail({"id": "Q1"}, HTML_MAIL, found)
    assert shown["envelope"]["sender"] == "trac@example.org"
    assert shown["trace"] == [{"option": "smtp_from", "change": "From set"}]
    assert shown["envelope"]["recipients"] == ["a@x"]  # a JSON list, as before
    assert shown["timeline"][0]["event"] == "received" and shown["filters"] == {}


def test_release_needs_every_recipient_allowed() -> None:
    allowed = ("*@example.org", "dev@test.example")
    wanted = ["A@Example.org", "dev@test.example"]
    assert release_recipients(wanted, allowed) == tuple(wanted)
    for recipients, ruled, reason in [
        (["a@example.org", "outsider@evil.example"], allowed, "outsider@evil.example"),
        (["a@example.org"], (), "release is off"),
        ([], allowed, "no recipients to release to"),
    ]:
        with pytest.raises(ReleaseRefused, match=reason) as refused:
            release_recipients(recipients, ruled)
        assert not refused.value.bad_address


async def test_events_reach_subscribers_from_other_threads() -> None:
    events = Events()
    with events.subscribe() as queue:
        await asyncio.to_thread(events.publish, MailEvent(MailEventKind.NEW, ("Q1",)))
        assert await asyncio.wait_for(queue.get(), 5) == MailEvent(MailEventKind.NEW, ("Q1",))
    events.publish(MailEvent(MailEventKind.DELETED))  # nobody listens: no error


async def test_a_slow_subscriber_gets_a_reset() -> None:
    events = Events()
    with events.subscribe() as queue:
        for number in range(1001):
            events.publish(MailEvent(MailEventKind.NEW, (str(number),)))
        assert queue.qsize() == 1
        assert queue.get_nowait().kind is MailEventKind.RESET
