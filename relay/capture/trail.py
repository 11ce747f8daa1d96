"""This process's own changes to a capture Maildir, in order, until its index holds them.

The index records the state of the Maildir it is in line with (the modification times of
``new/`` and ``cur/``); a reader that finds another state reconciles. The store's own
changes must not look like changes made behind the index's back, though, not even while
their index entries are still being written (the message files are indexed after the SMTP
250, by a thread of their own). So each change notes the state before and after it, and
the changes line up in the order they were made. Once the index holds a change and every
one before it, its record moves on to the state after that change — provided the record
matched the state before it; if not, something else changed the Maildir in between, and
the record stays behind for the next reader to reconcile. A change the index failed to
take breaks the line the same way.

The line also tells readers what to wait for (:meth:`Trail.wait`: everything recorded
before they asked) and the indexer thread what to index (:meth:`Trail.take`).
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from relay.capture.index import CaptureIndex

__all__ = ["Job", "Settlement", "Step", "Trail"]

#: A message file to index: its queue id and its path under the Maildir.
Job = tuple[str, str]


@dataclass(eq=False, slots=True)
class Step:
    """One change to ``new/`` or ``cur/``: the Maildir's state before and after it, the
    message file it added (if the indexer is to index it) and, once settled, whether the
    index holds it."""

    before: str
    after: str = ""
    job: Job | None = None
    indexed: bool | None = None


class Trail:
    """The line of changes of one store; ``state`` reads the Maildir's state."""

    def __init__(self, state: Callable[[], str]) -> None:
        self._state = state
        self._lock = threading.Condition()
        self._steps: deque[Step] = deque()
        self._jobs: deque[Step] = deque()
        self._recorded = 0  # steps recorded so far
        self._done = 0  # steps that left the line, their transaction over
        self._indexer = False  # an indexer thread is running (it takes the jobs)
        self._holder: int | None = None  # the thread whose settled steps wait (see batch)
        self._held = 0
        self._stopping = False
        self.behind = False  # a change went missing from the index since the last reconcile

    @contextmanager
    def change(self, job: Job | None = None) -> Iterator[Step]:
        """Make a change to ``new/`` or ``cur/`` in the block: it joins the line if the block
        succeeds. One that fails part-way is like a change behind the index's back."""
        with self._lock:
            step = Step(self._state(), job=job)
            yield step
            step.after = self._state()
            self._steps.append(step)
            self._recorded += 1
            if job is not None:
                self._jobs.append(step)
                self._lock.notify_all()

    def needs_indexer(self) -> bool:
        """True (once) when jobs wait and no indexer thread runs: the caller starts one."""
        with self._lock:
            if self._indexer or not self._jobs:
                return False
            self._indexer = True
            return True

    def take(self, limit: int, linger: float) -> list[Step]:
        """For the indexer thread: up to ``limit`` waiting jobs, oldest first, as soon as
        there are any; none after ``linger`` seconds without (or at once after :meth:`stop`),
        and then the thread must end."""
        deadline = time.monotonic() + linger
        with self._lock:
            while not self._jobs:
                remaining = deadline - time.monotonic()
                if self._stopping or remaining <= 0:
                    self._indexer = False
                    return []
                self._lock.wait(remaining)
            return [self._jobs.popleft() for _ in range(min(limit, len(self._jobs)))]

    @contextmanager
    def batch(self) -> Iterator[None]:
        """Around the indexer thread's work on what it took (entries, then retention):
        readers waiting for any of it wake once all of it is done."""
        with self._lock:
            self._holder = threading.get_ident()
        try:
            yield
        finally:
            with self._lock:
                self._holder, held, self._held = None, self._held, 0
            self._left(held)

    def stop(self, stopping: bool = True) -> None:
        """Let the indexer thread end once no job waits (False: linger again)."""
        with self._lock:
            self._stopping = stopping
            self._lock.notify_all()

    def wait(self) -> None:
        """Return once every change recorded before the call has been settled (a lock and a
        comparison when nothing is pending)."""
        with self._lock:
            target = self._recorded
            while self._done < target:
                self._lock.wait()

    def accounts_for(self, info: str | None) -> bool:
        """True if the Maildir is in the state ``info`` but for the changes on the line:
        nothing changed behind the index's back."""
        with self._lock:
            if self.behind:
                return False
            state = info
            for step in self._steps:
                if step.indexed is False or step.before != state:
                    return False
                state = step.after
            return state == self._state()

    @contextmanager
    def reconciling(self) -> Iterator[None]:
        """Around a reconciliation: what went missing before it starts, it finds."""
        self.behind = False
        try:
            yield
        except BaseException:
            self.behind = True
            raise

    @contextmanager
    def transaction(self, index: CaptureIndex, jobs: Iterable[Step] = ()) -> Iterator[Settlement]:
        """A write transaction of ``index`` that settles its changes: ``jobs`` (as not
        indexed unless the block says otherwise) and those made through the settlement."""
        settlement = Settlement(self, jobs)
        left = 0
        try:
            with index.transaction():
                yield settlement
                left += self._settle(settlement.outcomes, index)
        except BaseException:
            left += self._settle(dict.fromkeys(settlement.outcomes, False), None)
            raise
        finally:
            self._left(left)

    def fail(self, steps: Iterable[Step]) -> None:
        """Settle ``steps`` as not indexed (their transaction never began); no harm if they
        were settled already."""
        self._left(self._settle(dict.fromkeys(steps, False), None))

    def _settle(self, outcomes: dict[Step, bool], index: CaptureIndex | None) -> int:
        """Note outcomes; let the settled head of the line go, moving the index's record
        on (``index``: inside its transaction); return how many steps left the line."""
        with self._lock:
            for step, indexed in outcomes.items():
                step.indexed = indexed and index is not None
                self.behind = self.behind or not step.indexed
            # a state that a pending change also ends in must not be recorded yet: a reader
            # would take the Maildir for in line while the index still lacks that change
            pending = {step.after for step in self._steps if step.indexed is None}
            count = 0
            start = state = index.info("maildir") if index is not None else None
            reached = start
            for step in self._steps:
                if step.indexed is None or step.after in pending:
                    break
                count += 1
                fits = state is not None and step.indexed and state == step.before
                state = step.after if fits else None
                reached = state if state is not None else reached
            if index is not None and reached is not None and reached != start:
                index.set_info("maildir", reached)
            for _ in range(count):
                self._steps.popleft()
            return count

    def _left(self, count: int) -> None:
        if count:
            with self._lock:
                if self._holder == threading.get_ident():
                    self._held += count
                    return
                self._done += count
                self._lock.notify_all()


class Settlement:
    """The changes one index transaction settles (see :meth:`Trail.transaction`)."""

    def __init__(self, trail: Trail, jobs: Iterable[Step]) -> None:
        self._trail = trail
        self.outcomes: dict[Step, bool] = dict.fromkeys(jobs, False)

    def holds(self, step: Step) -> None:
        """The transaction wrote the index entry of ``step``."""
        self.outcomes[step] = True

    @contextmanager
    def change(self) -> Iterator[None]:
        """A change to ``new/`` or ``cur/`` whose index update this transaction makes."""
        with self._trail.change() as step:
            yield
        self.outcomes[step] = True
