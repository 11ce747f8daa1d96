"""The queue as people read it: one entry per message, a mailq-like table, one message in full.

:func:`read_entries` reads the spool (blocking) and tolerates messages that move while it
reads, so it is safe while the server runs; the ``format_*`` functions are pure.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field

from relay.log import one_line
from relay.queue.spool import QueueState, Spool
from relay.record import CorruptRecord, DeliveryState, Record, UnfinishedRecord

__all__ = ["Entry", "entry_of", "format_message", "format_table", "read_entries", "read_one"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Entry:
    """What ``queue list`` shows of one message."""

    queue_id: str
    state: QueueState
    size: int
    arrival: float | None = None
    sender: str = ""
    recipients: tuple[str, ...] = ()
    done: tuple[str, ...] = ()
    failed: tuple[str, ...] = ()
    attempts: int = 0
    next_attempt: float | None = None
    last_reply: str = ""
    #: Each attempted recipient's own final reply.
    replies: Mapping[str, str] = field(default_factory=dict)

    def as_dict(self) -> dict[str, object]:
        """The entry as JSON-able data (``queue list --json``)."""
        return {
            "id": self.queue_id,
            "state": self.state.value,
            "size": self.size,
            "arrival": self.arrival,
            "sender": self.sender,
            "recipients": list(self.recipients),
            "sent": list(self.done),
            "failed": list(self.failed),
            "attempts": self.attempts,
            "next_attempt": self.next_attempt,
            "last_reply": self.last_reply,
            "replies": dict(self.replies),
        }


def entry_of(record: Record, state: DeliveryState, where: QueueState) -> Entry:
    """The entry of a decoded record; replies are shown on one line each, also those
    stored by versions that kept an upstream's line breaks."""
    final = {rcpt: attempt.reply for attempt in state.log for rcpt in attempt.recipients}
    return Entry(
        queue_id=record.queue_id,
        state=where,
        size=len(record.message),
        arrival=record.envelope.received_at,
        sender=record.envelope.sender,
        recipients=record.envelope.recipients,
        done=state.done,
        failed=state.failed,
        attempts=state.attempts,
        next_attempt=state.next_attempt if where is QueueState.DEFERRED else None,
        last_reply=one_line(state.last_reply or state.reason),
        replies={
            rcpt: one_line(final[rcpt]) for rcpt in record.envelope.recipients if rcpt in final
        },
    )


def read_one(spool: Spool, queue_id: str) -> tuple[Record, DeliveryState, QueueState] | None:
    """The record, delivery state and state directory of ``queue_id``, or None if absent.

    Raises :class:`CorruptRecord` for a file that does not decode.
    """
    for _ in range(3):  # a message may move between finding and reading it
        where = spool.find(queue_id)
        if where is None:
            return None
        try:
            return *spool.load(queue_id, where), where
        except FileNotFoundError:
            continue
        except UnfinishedRecord:
            if where is QueueState.INCOMING:
                return None  # a reserved file, or one being written: no message yet
            raise
    return None


def read_entries(spool: Spool) -> list[Entry]:
    """Every message in the spool, oldest first; undecodable files show as they are."""
    entries = []
    for queue_id in sorted({name for state in QueueState for name in spool.ids(state)}):
        try:
            found = read_one(spool, queue_id)
        except CorruptRecord as exc:
            where = spool.find(queue_id) or QueueState.CORRUPT
            size = spool.path(queue_id, where).stat().st_size
            entries.append(Entry(queue_id=queue_id, state=where, size=size, last_reply=str(exc)))
            continue
        if found is not None:
            entries.append(entry_of(*found))
    return entries


def _when(timestamp: float | None) -> str:
    if timestamp is None:
        return "-"
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(timestamp))


def _next(entry: Entry) -> str:
    if entry.state is QueueState.INCOMING:
        return "now"
    if entry.state is QueueState.DEFERRED:
        return _when(entry.next_attempt)
    return "-"


def _recipients(entry: Entry) -> str:
    marks = {**dict.fromkeys(entry.done, " (sent)"), **dict.fromkeys(entry.failed, " (failed)")}
    return ", ".join(f"<{rcpt}>{marks.get(rcpt, '')}" for rcpt in entry.recipients)


def format_table(entries: list[Entry]) -> str:
    """A mailq-like listing: a line per message, its recipients and last reply below."""
    if not entries:
        return "Mail queue is empty"
    lines = [
        f"{'QUEUE ID':<18}  {'SIZE':>8}  {'ARRIVAL':<19}  {'STATE':<8}  "
        f"{'NEXT ATTEMPT':<19}  SENDER"
    ]
    for entry in entries:
        lines.append(
            f"{entry.queue_id:<18}  {entry.size:>8}  {_when(entry.arrival):<19}  "
            f"{entry.state.value:<8}  {_next(entry):<19}  <{entry.sender}>"
        )
        if entry.recipients:
            lines.append(f"    to: {_recipients(entry)}")
        lines += [f"    reply for <{rcpt}>: {reply}" for rcpt, reply in entry.replies.items()]
        if entry.last_reply and not entry.replies:
            lines.append(f"    last reply: {entry.last_reply}")
    counts = Counter(entry.state for entry in entries)
    shape = ", ".join(f"{counts[state]} {state.value}" for state in QueueState if counts[state])
    size = sum(entry.size for entry in entries)
    lines.append(f"-- {len(entries)} message(s), {size} bytes: {shape}")
    return "\n".join(lines)


def format_message(record: Record, state: DeliveryState, where: QueueState) -> str:
    """One message in full (``queue show``): envelope, attempts, cleanup trace, content."""
    entry = entry_of(record, state, where)
    envelope = record.envelope
    lines = [
        f"queue id:     {record.queue_id}",
        f"state:        {where.value} (attempts: {state.attempts}, next: {_next(entry)})",
        f"arrival:      {_when(envelope.received_at)}",
        f"client:       {envelope.peer or '-'} (helo {envelope.helo or '-'})",
        f"sender:       <{envelope.sender}>",
        f"recipients:   {_recipients(entry)}",
        f"size:         {entry.size} bytes",
    ]
    if envelope.mail_options:
        lines.append(f"options:      {' '.join(envelope.mail_options)}")
    for attempt in state.log:
        rcpts = ", ".join(f"<{rcpt}>" for rcpt in attempt.recipients)
        lines.append(
            f"attempt:      {_when(attempt.at)} {attempt.relay} {rcpts} "
            f"status={attempt.status} ({one_line(attempt.reply)})"
        )
    lines += [f"cleanup:      {step.option}: {step.change}" for step in record.trace]
    lines += ["", record.message.decode("utf-8", errors="replace").replace("\r\n", "\n")]
    return "\n".join(lines)
