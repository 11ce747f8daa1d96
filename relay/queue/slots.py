"""Queue files reserved ahead of need, so that accepting a message costs one flush.

A new file is durable after two flushes: its data's and its directory's (a new name is not
durable until the directory is synced). A receiving process pays the second one ahead of
time and for many files at once: it creates empty files in ``incoming/``, syncs the
directory once, and hands their names out as queue ids (:meth:`Slots.take`). Accepting a
message then writes into one of them and flushes only that file before the 250
(:meth:`Spool.accept` with the file :meth:`Slots.used` hands over). Postfix's cleanup also
flushes only the file, but leaves the name to the file system's journal; here the name is
flushed, just earlier.

An empty file in ``incoming/`` is a reservation, not a message, and one whose write did not
finish is not one yet (:class:`UnfinishedRecord`): the queue skips both. The process that
reserved a file holds it locked (``flock``) until it is written or removed, so what a
process that died reserved is known by its lock being free: a receiving process removes
such files when it starts (:func:`remove_unclaimed`, so a crash loop leaves no pile), the
start of the whole relay removes every empty one (:meth:`Spool.recover`), and a clean stop
removes those it never handed out (:meth:`Slots.stop`). A queue id's time is when its file
was reserved: at most :data:`MAX_AGE` seconds before the message came, as older
reservations are replaced, so ids still sort by arrival within that margin.
"""

from __future__ import annotations

import collections
import contextlib
import os
import threading
import time

from relay.durable import remove_unclaimed, reserve_durably
from relay.log import fields, logger
from relay.model import new_queue_id
from relay.queue.spool import QueueState, Spool

__all__ = ["MAX_AGE", "Slots"]

#: Seconds a reservation is handed out for; older ones are replaced.
MAX_AGE = 30.0
_RETRY = 1.0  # seconds before reserving again after the disk refused


class Slots:
    """A pool of reserved queue files for one process, refilled by a thread of its own.

    Every method is thread-safe; :meth:`take` never blocks on the disk.
    """

    def __init__(self, spool: Spool, size: int = 32, max_age: float = MAX_AGE) -> None:
        self.spool, self.size, self.max_age = spool, size, max_age
        self._directory = spool.root / QueueState.INCOMING.value
        #: Reserved files not handed out: queue id, open locked file, when made.
        self._free: collections.deque[tuple[str, int, float]] = collections.deque()
        self._taken: dict[str, int] = {}  # handed out by take(), not yet used
        self._stale: list[tuple[str, int]] = []  # to remove
        self._lock = threading.Lock()
        self._wanted = threading.Event()
        self._stopping = False
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Remove what processes that died reserved, reserve a first batch (so the first
        message has one), then keep the pool full."""
        try:
            swept = remove_unclaimed(self._directory)
        except OSError:
            swept = []  # the refill below says what is wrong with the directory
        if swept:
            logger.info(
                "queue: removed %d files reserved by a process that ended: %s",
                len(swept),
                " ".join(swept),
                extra=fields(queue_id=" ".join(swept)),
            )
        self._refill()
        self._thread = threading.Thread(target=self._run, name="slots", daemon=True)
        self._thread.start()

    def take(self) -> str | None:
        """A reserved queue id, oldest first, or None if none is ready (the caller writes
        the message the ordinary way)."""
        with self._lock:
            now = time.monotonic()
            while self._free:
                queue_id, fd, made = self._free.popleft()
                if now - made <= self.max_age:
                    self._taken[queue_id] = fd
                    if len(self._free) <= self.size // 2:
                        self._wanted.set()
                    return queue_id
                self._stale.append((queue_id, fd))
            self._wanted.set()
            return None

    def used(self, queue_id: str) -> int | None:
        """The open file of ``queue_id`` if it came from :meth:`take` (the caller writes
        into it and closes it: :meth:`Spool.accept`), else None."""
        with self._lock:
            return self._taken.pop(queue_id, None)

    def unused(self, queue_id: str) -> None:
        """Take back ``queue_id`` from :meth:`take` that no message was written into (one
        every recipient's filters discarded, or whose store failed before it began): its
        file is removed, not left empty in ``incoming/``. It is not handed out again: the
        log has named it already."""
        with self._lock:
            fd = self._taken.pop(queue_id, None)
            if fd is not None:
                self._stale.append((queue_id, fd))
                self._wanted.set()

    def stop(self) -> None:
        """Stop refilling and remove the reservations never handed out. One taken and not
        used (its message refused late) stays, empty, for the next start to remove: a
        write into it may still be under way."""
        self._stopping = True
        self._wanted.set()
        if self._thread is not None:
            self._thread.join()
        with self._lock:
            unused = [(queue_id, fd) for queue_id, fd, _ in self._free] + self._stale
            self._free.clear()
            self._stale = []
        self._remove(unused)

    def _run(self) -> None:
        while True:
            self._wanted.wait()
            if self._stopping:
                return
            self._wanted.clear()
            if not self._refill():
                time.sleep(_RETRY)  # take() keeps answering None meanwhile

    def _refill(self) -> bool:
        """Replace stale reservations and fill the pool up; False if the disk refused."""
        with self._lock:
            stale, self._stale = self._stale, []
            missing = self.size - len(self._free)
        self._remove(stale)
        if missing <= 0:
            return True
        try:
            made = reserve_durably(self._directory, [new_queue_id() for _ in range(missing)])
        except OSError as exc:
            logger.warning(
                "queue: cannot reserve files in %s: %s; writing each message whole",
                self._directory,
                exc.strerror or exc,
                extra=fields(reason=str(exc.strerror or exc)),
            )
            return False
        now = time.monotonic()
        with self._lock:
            self._free.extend((queue_id, fd, now) for queue_id, fd in made)
        return True

    def _remove(self, reserved: list[tuple[str, int]]) -> None:
        """Remove reserved files no message was written into, and let them go."""
        for queue_id, fd in reserved:
            with contextlib.suppress(OSError):
                if os.fstat(fd).st_size == 0:
                    self.spool.path(queue_id, QueueState.INCOMING).unlink()
            os.close(fd)
