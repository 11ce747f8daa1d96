"""What the index keeps of one captured message, computed from its bytes and metadata (pure).

The search words are the tokens :mod:`relay.gmail` matches against, one FTS column per
place a query can look (texts of one column are kept apart by ``|``, which no query word
can contain); each recipient's simulated Gmail state is stored as a small JSON key.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import email.errors
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from relay.capture.meta import CaptureMeta
from relay.capture.timeline import delivery_status
from relay.gmail import Mailbox, MessageState, MessageView
from relay.gmail.view import ADDRESS_FIELDS
from relay.gmail.words import Text, fold

__all__ = [
    "WORD_COLUMNS",
    "IndexEntry",
    "entry_of",
    "recipient_view",
    "reversed_domain",
    "state_key",
    "state_of",
    "view_of",
]

#: FTS columns: the subject, the body, attachment names, and one per address field.
WORD_COLUMNS = ("subject", "body", "filename", *(f"f_{name}" for name in ADDRESS_FIELDS))
_SEPARATOR = " | "
#: What relay.gmail may raise on a malformed message (a charset name that is not ASCII ...).
_UNREADABLE = (email.errors.MessageError, ValueError, LookupError, UnicodeError)
_SNIPPET = 200


@dataclass(frozen=True, slots=True, kw_only=True, eq=False)
class IndexEntry:
    """One row of the index with its words, addresses and per-recipient states.

    ``received`` orders the list (arrival at the relay, else the file's time); ``arrival``
    is what date operators read; ``addresses`` holds (field, folded address,
    :func:`reversed_domain`); ``unread`` says why only the header was indexed (None: all).
    """

    id: str
    path: str
    received: float
    arrival: float | None
    size: int
    attachments: int
    message_id: str
    item: dict[str, Any]
    words: dict[str, str]
    addresses: tuple[tuple[str, str, str], ...]
    states: tuple[tuple[str, str], ...]
    unread: str | None = None


def view_of(
    raw: bytes,
    meta: CaptureMeta | None,
    *,
    recipient: str | None = None,
    state: MessageState | None = None,
) -> MessageView:
    """The message as the Gmail evaluator sees it: arrival and envelope from ``meta`` (None:
    the message has no metadata).

    ``recipient`` is who ``me`` means; ``state`` that recipient's labels, flags and place.
    A message relay.gmail cannot parse is seen as an empty one of its size: it is still
    kept, listed and found by envelope, size and date.
    """
    received = meta.received_at if meta is not None else None
    options: dict[str, Any] = {
        "received_at": dt.datetime.fromtimestamp(received, dt.UTC) if received else None,
        "envelope_recipients": meta.recipients if meta is not None else (),
        "user_addresses": (recipient,) if recipient else (),
    }
    try:
        view = MessageView.from_bytes(raw, **options)
    except _UNREADABLE:
        view = dataclasses.replace(MessageView.from_bytes(b"", **options), size=len(raw))
    return dataclasses.replace(view, state=state) if state is not None else view


def entry_of(
    queue_id: str, path: str, raw: bytes, meta: CaptureMeta | None, *, file_time: float
) -> IndexEntry:
    """Build the index entry of the message file ``path`` (relative to the Maildir); without
    ``meta`` (or its arrival time) it is listed by its file time."""
    known = meta or CaptureMeta.blank(queue_id)
    view = view_of(raw, known)
    received = known.received_at or file_time
    mailboxes = view.mailboxes
    words = {
        "subject": _joined([view.subject]),
        "body": _joined([view.body]),
        "filename": _joined(view.filenames),
        **{
            f"f_{name}": _joined([t for m in mailboxes[name] for t in (m.name, m.address)])
            for name in ADDRESS_FIELDS
        },
    }
    addresses = {
        (name, mailbox.folded, reversed_domain(mailbox.folded))
        for name in ADDRESS_FIELDS
        for mailbox in mailboxes[name]
    }
    filters = known.filters
    recipients = dict.fromkeys(fold(r) for r in [*known.recipients, *filters])
    results = {fold(rcpt): result for rcpt, result in filters.items()}
    states = tuple((rcpt, state_key(_state(results.get(rcpt)))) for rcpt in recipients)
    item = {
        "id": queue_id,
        "from": _mailbox(mailboxes["from"][0]) if mailboxes["from"] else None,
        "to": [_mailbox(m) for m in mailboxes["to"]],
        "cc": [_mailbox(m) for m in mailboxes["cc"]],
        "subject": view.subject.text,
        "date": view.date.isoformat() if view.date else None,
        "received": dt.datetime.fromtimestamp(received, dt.UTC).isoformat(),
        "size": view.size,
        "snippet": " ".join(view.body.text.split())[:_SNIPPET],
        "attachments": len(view.attachments),
        "recipients": list(known.recipients),
        "filters": dict(filters),
        "status": delivery_status(known).value,
        "relay_refusal_count": len(known.relay_refusals),
    }
    return IndexEntry(
        id=queue_id,
        path=path,
        received=received,
        arrival=view.arrival.timestamp() if view.arrival else None,
        size=view.size,
        attachments=len(view.attachments),
        message_id=view.message_id,
        item=item,
        words=words,
        addresses=tuple(sorted(addresses)),
        states=states,
        unread=view.unread,
    )


def reversed_domain(address: str) -> str:
    """``.`` and the domain of ``address``, reversed: ``b@mail.example.org`` gives
    ``gro.elpmaxe.liam.``, so one index range finds a domain and its subdomains."""
    return f".{address.rpartition('@')[2]}"[::-1] if "@" in address else ""


def state_key(state: MessageState) -> str:
    """A compact, canonical JSON key of ``state`` (what the index stores per recipient)."""
    data = {f.name: getattr(state, f.name) for f in dataclasses.fields(MessageState)}
    data["labels"] = sorted(state.labels)
    return json.dumps(data, sort_keys=True, separators=(",", ":"))


def state_of(key: str) -> MessageState:
    """The state a :func:`state_key` stands for."""
    data = json.loads(key)
    return MessageState(**{**data, "labels": frozenset(data["labels"])})


def recipient_view(recipient: str, key: str) -> dict[str, Any]:
    """What ``recipient``'s Gmail would show: inbox or archived, labels, read, starred ..."""
    state = state_of(key)
    return {
        "recipient": recipient,
        "labels": sorted(state.labels),
        "in_inbox": state.in_inbox and not (state.trashed or state.spam),
        "archived": not state.in_inbox,
        "read": not state.unread,
        "starred": state.starred,
        "important": state.important,
        "category": state.category,
        "trashed": state.trashed,
    }


def _state(result: Mapping[str, Any] | None) -> MessageState:
    """The state a ``FilterResult.to_dict()`` describes; no result: as at arrival."""
    if result is None:
        return MessageState()
    return MessageState(
        labels=frozenset(result.get("labels") or ()),
        unread=not result.get("read", False),
        starred=bool(result.get("starred")),
        important=bool(result.get("important")),
        category=result.get("category"),
        in_inbox=not result.get("archived", False),
        trashed=bool(result.get("trashed")),
    )


def _joined(texts: Sequence[Text]) -> str:
    return _SEPARATOR.join(" ".join(text.tokens) for text in texts)


def _mailbox(mailbox: Mailbox) -> dict[str, str]:
    return {"name": mailbox.name.text, "address": mailbox.address.text}
