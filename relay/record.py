"""The on-disk format of one queued message and of its delivery state (pure: bytes in, out).

Shared by the stages: receive writes records, queue schedules them, deliver sends and
capture keeps them.

A record is written once; afterwards only its delivery marks change, in place::

    notify-relay-queue/2 <meta length> <message length>\\n
    <meta: JSON, UTF-8>\\n
    <message bytes>\\n
    end <crc32 of meta and message, 8 hex digits>\\n
    <one mark per envelope recipient: "-" not yet delivered, "+" delivered>\\n

The lengths and the end line make a torn or truncated file detectable, as Postfix's END
record does. The marks line is preallocated when the record is written, so marking a
recipient delivered overwrites one byte (:func:`mark_offset`) and needs no new disk block:
it works on a full disk, as Postfix's in-place "done" marks in its queue files do. The
delivery state (attempts, per-recipient results, next attempt) changes after every attempt
and lives in a small JSON file of its own beside the record. Files of version 1 (no marks
line) still load.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from relay.model import Envelope, Refusal, TraceEntry

__all__ = [
    "DELIVERED_MARK",
    "Attempt",
    "CorruptRecord",
    "DeliveryState",
    "Record",
    "UnfinishedRecord",
    "decode_record",
    "decode_state",
    "encode_record",
    "encode_state",
    "mark_offset",
    "unfinished_head",
]

_MAGIC = b"notify-relay-queue/2"
_OLD_MAGIC = b"notify-relay-queue/1"  # no delivery marks
_PENDING = b"-"
#: The byte :func:`mark_offset` points at, once its recipient is delivered.
DELIVERED_MARK = b"+"


class CorruptRecord(ValueError):
    """A queue file that cannot be decoded: truncated, torn, or not ours."""


class UnfinishedRecord(CorruptRecord):
    """A queue file that is a beginning of one, shorter than its first line says (or
    empty): a write in progress, or one whose writer died before it could answer 250."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Record:
    """One accepted message: its id, envelope, content, the cleanup trace and, per recipient,
    what their Gmail filters would do (``FilterResult.to_dict()`` data).

    Capture mode only (never in a queue file: relay mode refuses instead): ``refusals``
    says what relay mode would have refused, and ``original`` holds the bytes as received
    when cleanup had to change more than relay mode ever lets through (bare LF line ends).
    """

    queue_id: str
    envelope: Envelope
    message: bytes
    trace: tuple[TraceEntry, ...] = ()
    filters: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    #: Recipients marked delivered in the file.
    delivered: frozenset[str] = frozenset()
    #: Whether the file has a marks line (version 1 files do not: rewrite them to mark).
    markable: bool = field(default=True, compare=False)
    refusals: tuple[Refusal, ...] = ()
    original: bytes | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Attempt:
    """One delivery attempt for some recipients, with the upstream's reply."""

    at: float
    relay: str
    recipients: tuple[str, ...]
    status: str
    reply: str

    def as_dict(self) -> dict[str, object]:
        """The attempt as JSON-able data (the shape of the state file and the API)."""
        return {
            "at": self.at,
            "relay": self.relay,
            "recipients": list(self.recipients),
            "status": self.status,
            "reply": self.reply,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class DeliveryState:
    """What happened to a message so far; ``done`` and ``failed`` recipients are final."""

    attempts: int = 0
    next_attempt: float = 0.0
    done: tuple[str, ...] = ()
    failed: tuple[str, ...] = ()
    last_reply: str = ""
    reason: str = ""
    log: tuple[Attempt, ...] = field(default=())

    def pending(self, envelope: Envelope) -> tuple[str, ...]:
        """Recipients of ``envelope`` that still need delivery, each once (a client may
        name the same mailbox twice: one delivery, one unit of the upstream's quota)."""
        final = {*self.done, *self.failed}
        return tuple(dict.fromkeys(rcpt for rcpt in envelope.recipients if rcpt not in final))

    def with_attempt(self, attempt: Attempt) -> DeliveryState:
        """Return a copy with ``attempt`` appended to the log and as the last reply."""
        return replace(self, log=(*self.log, attempt), last_reply=attempt.reply)

    def with_done(self, delivered: Iterable[str]) -> DeliveryState:
        """Return a copy that also counts ``delivered`` as done (marks in the record)."""
        extra = tuple(rcpt for rcpt in dict.fromkeys(delivered) if rcpt not in self.done)
        return replace(self, done=(*self.done, *extra)) if extra else self


def encode_record(record: Record) -> bytes:
    """Serialise ``record`` to the bytes of a queue file."""
    env = record.envelope
    meta = json.dumps(
        {
            "id": record.queue_id,
            "sender": env.sender,
            "recipients": list(env.recipients),
            "mail_options": list(env.mail_options),
            "received_at": env.received_at,
            "peer": env.peer,
            "helo": env.helo,
            "trace": [[entry.option, entry.change] for entry in record.trace],
            "filters": record.filters,
        },
        ensure_ascii=False,
    ).encode("utf-8")
    checksum = zlib.crc32(record.message, zlib.crc32(meta))
    head = b"%s %d %d\n" % (_MAGIC, len(meta), len(record.message))
    marks = b"".join(
        DELIVERED_MARK if rcpt in record.delivered else _PENDING for rcpt in env.recipients
    )
    tail = b"\nend %08x\n%s\n" % (checksum, marks)
    return b"".join((head, meta, b"\n", record.message, tail))


def mark_offset(head: bytes, index: int) -> int:
    """Where in a version 2 file the mark of the ``index``-th recipient is.

    ``head`` is the start of the file (its first line is enough). Raises
    :class:`CorruptRecord` for a file without marks.
    """
    line, newline, _ = head.partition(b"\n")
    meta_len, msg_len, marked = _lengths(line)
    if not newline or not marked:
        raise CorruptRecord("no delivery marks (a version 1 queue file)")
    end_line = len(b"\nend 00000000\n")
    return len(line) + 1 + meta_len + 1 + msg_len + end_line + index


def unfinished_head(head: bytes, size: int) -> bool:
    """Whether a queue file of ``size`` bytes that starts with ``head`` (its first line, or
    128 bytes or more of it) is, as far as its first line tells, a beginning of one: a
    write in progress or cut short (:class:`UnfinishedRecord`), without reading it whole."""
    line, newline, _ = head.partition(b"\n")
    if not newline:
        return any(magic.startswith(line[: len(magic)]) for magic in (_MAGIC, _OLD_MAGIC))
    try:
        meta_len, msg_len, _ = _lengths(line)
    except CorruptRecord:
        return False  # not ours: the queue quarantines it
    return size < len(line) + 1 + meta_len + 1 + msg_len + len(b"\nend 00000000\n")


def _lengths(head: bytes) -> tuple[int, int, bool]:
    """The meta and message lengths of a first line, and whether the file has marks."""
    parts = head.split(b" ")
    if len(parts) != 3 or parts[0] not in (_MAGIC, _OLD_MAGIC):
        raise CorruptRecord("not a notify-relay queue file")
    try:
        return int(parts[1]), int(parts[2]), parts[0] == _MAGIC
    except ValueError:
        raise CorruptRecord("bad length field") from None


def decode_record(data: bytes) -> Record:
    """Parse the bytes of a queue file; raise :class:`CorruptRecord` if they are not whole."""
    head, newline, rest = data.partition(b"\n")
    if not newline:
        if any(magic.startswith(head[: len(magic)]) for magic in (_MAGIC, _OLD_MAGIC)):
            raise UnfinishedRecord("empty" if not data else "truncated")
        raise CorruptRecord("not a notify-relay queue file")
    meta_len, msg_len, markable = _lengths(head)
    meta, message, tail = (
        rest[:meta_len],
        rest[meta_len + 1 : meta_len + 1 + msg_len],
        rest[meta_len + 1 + msg_len :],
    )
    end = b"\nend %08x\n" % zlib.crc32(message, zlib.crc32(meta))
    if len(message) < msg_len or len(tail) < len(end):
        raise UnfinishedRecord("truncated")
    if not tail.startswith(b"\nend "):
        raise CorruptRecord("truncated")
    if tail[: len(end)] != end:
        raise CorruptRecord("checksum mismatch")
    marks = tail[len(end) :]
    try:
        fields = json.loads(meta)
        envelope = Envelope(
            sender=fields["sender"],
            recipients=tuple(fields["recipients"]),
            mail_options=tuple(fields["mail_options"]),
            received_at=float(fields["received_at"]),
            peer=fields["peer"],
            helo=fields["helo"],
        )
        trace = tuple(TraceEntry(option, change) for option, change in fields["trace"])
        queue_id, filters = fields["id"], fields.get("filters", {})
    except (ValueError, KeyError, TypeError) as exc:
        raise CorruptRecord(f"bad metadata: {exc}") from None
    return Record(
        queue_id=queue_id,
        envelope=envelope,
        message=message,
        trace=trace,
        filters=filters,
        delivered=_delivered(envelope.recipients, marks) if markable else frozenset(),
        markable=markable,
    )


def _delivered(recipients: tuple[str, ...], marks: bytes) -> frozenset[str]:
    """The recipients whose mark says delivered; the marks line must be whole."""
    if len(marks) <= len(recipients):
        raise UnfinishedRecord("truncated delivery marks")
    if len(marks) != len(recipients) + 1 or not marks.endswith(b"\n"):
        raise CorruptRecord("truncated delivery marks")
    if marks.strip(_PENDING + DELIVERED_MARK) != b"\n":
        raise CorruptRecord("bad delivery marks")
    pairs = zip(recipients, marks[:-1], strict=True)
    return frozenset(rcpt for rcpt, mark in pairs if mark == DELIVERED_MARK[0])


def encode_state(state: DeliveryState) -> bytes:
    """Serialise a delivery state as JSON."""
    fields = {
        "attempts": state.attempts,
        "next_attempt": state.next_attempt,
        "done": list(state.done),
        "failed": list(state.failed),
        "last_reply": state.last_reply,
        "reason": state.reason,
        "log": [attempt.as_dict() for attempt in state.log],
    }
    return json.dumps(fields, ensure_ascii=False).encode("utf-8")


def decode_state(data: bytes) -> DeliveryState:
    """Parse a delivery state; raise :class:`CorruptRecord` if it does not parse."""
    try:
        fields = json.loads(data)
        log = tuple(
            Attempt(
                at=a["at"],
                relay=a["relay"],
                recipients=tuple(a["recipients"]),
                status=a["status"],
                reply=a["reply"],
            )
            for a in fields["log"]
        )
        return DeliveryState(
            attempts=int(fields["attempts"]),
            next_attempt=float(fields["next_attempt"]),
            done=tuple(fields["done"]),
            failed=tuple(fields["failed"]),
            last_reply=fields["last_reply"],
            reason=fields["reason"],
            log=log,
        )
    except (ValueError, KeyError, TypeError) as exc:
        raise CorruptRecord(f"bad delivery state: {exc}") from None
