"""The spool directories: write, fsync, rename; one directory per queue state.

Layout under the queue path::

    tmp/        files being written (ignored and cleaned at start)
    incoming/   accepted, not yet attempted          (record files named by queue id);
                also files reserved empty for messages to come (relay/queue/slots.py)
    deferred/   attempted, waiting for the next try
    hold/       kept back by the operator
    failed/     dead letters: every recipient final and at least one failed
    corrupt/    files that did not decode, moved aside with a log line
    state/      <id>.json: the delivery state of a record (attempts, per-recipient results)

An empty file in ``incoming/``, or one whose write has not finished
(:class:`UnfinishedRecord`), is not a message: :meth:`Spool.ids` and the queue skip it, and
:meth:`Spool.recover` clears it at the start of the whole relay.

A record moves between state directories by ``rename``; its delivery state is replaced
atomically. The only change made to a record in place is marking recipients delivered
(:meth:`Spool.mark_delivered`): one byte each, overwritten and fsynced, so that it works
when the disk is full. Every method is blocking: call it from a worker thread.
"""

from __future__ import annotations

import enum
import os
from collections.abc import Collection, Iterable
from pathlib import Path

from relay.durable import (
    DirectorySync,
    fill_durably,
    fsync_dir,
    make_private_dir,
    write_durably,
)
from relay.errors import SpoolError
from relay.log import fields, logger
from relay.record import (
    DELIVERED_MARK,
    CorruptRecord,
    DeliveryState,
    Record,
    UnfinishedRecord,
    decode_record,
    decode_state,
    encode_record,
    encode_state,
    mark_offset,
    unfinished_head,
)

__all__ = ["QueueState", "Spool"]


class QueueState(enum.Enum):
    """Where a record is; the value is the directory name."""

    INCOMING = "incoming"
    DEFERRED = "deferred"
    HOLD = "hold"
    FAILED = "failed"
    CORRUPT = "corrupt"


_DIRS = ("tmp", "state", *(state.value for state in QueueState))


def _size(entry: os.DirEntry[str]) -> int:
    """The size of a directory entry's file; 0 if it is gone meanwhile."""
    try:
        return entry.stat().st_size
    except FileNotFoundError:
        return 0


class Spool:
    """A queue directory on disk."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._syncs = {name: DirectorySync(root / name) for name in _DIRS}

    def create(self) -> None:
        """Create the directories (mode 0700)."""
        try:
            for name in _DIRS:
                make_private_dir(self.root / name)
        except OSError as exc:
            raise SpoolError(f"cannot prepare queue directory {self.root}: {exc}") from exc

    def recover(self) -> None:
        """Clear what interrupted writes left: files in ``tmp/``, empty reservations in
        ``incoming/``. A file there whose write did not finish was never answered 250; it
        is moved to ``corrupt/`` all the same, with a log line, so that nothing the disk
        holds is thrown away. Only while no other process of this relay runs."""
        try:
            for leftover in (self.root / "tmp").iterdir():
                leftover.unlink()
            incoming = self.root / QueueState.INCOMING.value
            for entry in os.scandir(incoming):
                if entry.stat().st_size == 0:
                    os.unlink(entry.path)
                    continue
                try:
                    decode_record(Path(entry.path).read_bytes())
                except UnfinishedRecord as exc:
                    logger.error(
                        "%s: unfinished queue file (%s), never accepted; moved to %s/",
                        entry.name,
                        exc,
                        QueueState.CORRUPT.value,
                        extra=fields(queue_id=entry.name, reason=str(exc)),
                    )
                    self.move(entry.name, QueueState.INCOMING, QueueState.CORRUPT)
                except CorruptRecord:
                    continue  # the queue manager quarantines it, as any other
        except OSError as exc:
            raise SpoolError(f"cannot prepare queue directory {self.root}: {exc}") from exc

    def accept(self, record: Record, *, reserved: int | None = None) -> None:
        """Make ``record`` durable in ``incoming/``: write, fsync, rename, fsync directory;
        or, ``reserved`` (the open file :class:`~relay.queue.slots.Slots` reserved for it,
        closed here), write into that file and flush it alone. Raises
        :class:`SpoolError`."""
        path, data = self.path(record.queue_id, QueueState.INCOMING), encode_record(record)
        if reserved is not None:
            try:
                if fill_durably(reserved, path, data):
                    return
            except OSError as exc:
                raise SpoolError(f"cannot write {path}: {exc.strerror or exc}") from exc
            # the reservation was removed meanwhile: write it whole
        self._write_atomically(path, data)

    def path(self, queue_id: str, state: QueueState) -> Path:
        """The file of ``queue_id`` in ``state``."""
        return self.root / state.value / queue_id

    def read(self, queue_id: str, state: QueueState) -> Record:
        """Read and decode a record (raises ``CorruptRecord`` or ``OSError``)."""
        return decode_record(self.path(queue_id, state).read_bytes())

    def load(self, queue_id: str, state: QueueState) -> tuple[Record, DeliveryState]:
        """The record and its delivery state; recipients marked in the record count as done."""
        record = self.read(queue_id, state)
        return record, self.read_state(queue_id).with_done(record.delivered)

    def rewrite(self, record: Record, state: QueueState) -> None:
        """Replace the file of ``record`` in ``state`` atomically (a version 1 file becomes
        one with delivery marks)."""
        self._write_atomically(self.path(record.queue_id, state), encode_record(record))

    def mark_delivered(self, record: Record, state: QueueState, delivered: Collection[str]) -> None:
        """Mark ``delivered`` recipients of ``record`` done in its file, in place, durably.

        Overwrites preallocated bytes and fsyncs: no new disk blocks, so it works on a
        full disk. Raises :class:`SpoolError`.
        """
        path = self.path(record.queue_id, state)
        indexes = [i for i, rcpt in enumerate(record.envelope.recipients) if rcpt in delivered]
        try:
            fd = os.open(path, os.O_RDWR)
            try:
                head = os.pread(fd, 128, 0)
                for index in indexes:
                    os.pwrite(fd, DELIVERED_MARK, mark_offset(head, index))
                os.fsync(fd)
            finally:
                os.close(fd)
        except (OSError, CorruptRecord) as exc:
            why = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
            raise SpoolError(f"cannot mark delivered recipients in {path}: {why}") from exc

    def read_state(self, queue_id: str) -> DeliveryState:
        """The delivery state of ``queue_id``; a fresh one if it was never attempted."""
        try:
            return decode_state((self.root / "state" / f"{queue_id}.json").read_bytes())
        except FileNotFoundError:
            return DeliveryState()

    def write_state(self, queue_id: str, state: DeliveryState) -> None:
        """Replace the delivery state of ``queue_id`` atomically and durably."""
        self._write_atomically(self.root / "state" / f"{queue_id}.json", encode_state(state))

    def move(self, queue_id: str, source: QueueState, target: QueueState) -> None:
        """Move a record to another state directory, durably."""
        os.rename(self.path(queue_id, source), self.path(queue_id, target))
        fsync_dir(self.root / target.value)
        fsync_dir(self.root / source.value)

    def remove(self, queue_id: str, state: QueueState, *, sync: bool = True) -> None:
        """Delete a record and its delivery state (after the last recipient is final).

        With ``sync=False`` the caller batches the directory fsync through :meth:`sync`; a
        crash before it can bring the record back, which means a duplicate, never a loss.
        """
        self.path(queue_id, state).unlink(missing_ok=True)
        (self.root / "state" / f"{queue_id}.json").unlink(missing_ok=True)
        if sync:
            fsync_dir(self.root / state.value)

    def sync(self, states: Iterable[QueueState]) -> None:
        """Flush the entries of the given state directories."""
        for state in states:
            fsync_dir(self.root / state.value)

    def ids(self, state: QueueState) -> list[str]:
        """Queue ids in ``state``, oldest first (an empty file is a reservation, no id)."""
        return sorted(
            entry.name
            for entry in os.scandir(self.root / state.value)
            if entry.is_file() and (state is not QueueState.INCOMING or _size(entry))
        )

    def unfinished(self, queue_id: str) -> bool:
        """Whether ``queue_id`` in ``incoming/`` is shorter than its first line says: being
        written, or left so by a receiving process that died (no message; cheap: reads the
        first line only). False if it is gone."""
        try:
            with self.path(queue_id, QueueState.INCOMING).open("rb") as file:
                return unfinished_head(file.read(256), os.fstat(file.fileno()).st_size)
        except FileNotFoundError:
            return False

    def find(self, queue_id: str) -> QueueState | None:
        """The state directory holding ``queue_id``, or None."""
        return next((state for state in QueueState if self.path(queue_id, state).exists()), None)

    def orphan_states(self) -> list[str]:
        """Ids with a delivery state but no record (left by a crash during removal)."""
        known = {name for state in QueueState for name in os.listdir(self.root / state.value)}
        return [name[:-5] for name in os.listdir(self.root / "state") if name[:-5] not in known]

    def _write_atomically(self, target: Path, data: bytes) -> None:
        try:
            write_durably(
                target, data, self.root / "tmp", directory=self._syncs[target.parent.name]
            )
        except OSError as exc:
            raise SpoolError(f"cannot write {target}: {exc.strerror or exc}") from exc
