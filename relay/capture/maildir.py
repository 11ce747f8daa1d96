"""Captured messages as a Maildir (readable by any mail client) plus one JSON file each.

The message file is the exact bytes the relay would have sent; its name carries the queue
id (``<seconds>.M<micro>P<pid>Q<queue id>.<host>``). What the Maildir cannot hold
(envelope, rewrite trace, filter results, delivery timeline, releases, what relay mode
would have refused) sits in ``meta/<queue id>.json`` beside ``cur/ new/ tmp/`` — a plain
directory that mail clients ignore — and ``index.sqlite3`` indexes it all
(:mod:`relay.capture.index`). When cleanup had to repair a message that relay mode refuses
(bare LF line ends), the bytes as received are kept in ``meta/<queue id>.original``.
Storing a queue id again replaces its earlier copy.

:meth:`CaptureStore.store` returns once the message file is durable; a thread of the
store's own then indexes what is pending, in one transaction at a time, and applies
retention. Readers wait for what was stored before they asked (:mod:`relay.capture.trail`
keeps the line), and what a crash kept from the index the next start catches up with.
Methods block: call them from a worker thread.
"""

from __future__ import annotations

import hashlib
import json
import mailbox
import multiprocessing
import os
import re
import socket
import sqlite3
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from functools import partial
from itertools import islice
from pathlib import Path
from typing import Any

from relay.capture.entry import IndexEntry, entry_of
from relay.capture.events import Events, MailEvent, MailEventKind
from relay.capture.index import CaptureIndex
from relay.capture.meta import CaptureMeta
from relay.capture.search import Page, find, find_ids
from relay.capture.timeline import delivery_status
from relay.capture.trail import Step, Trail
from relay.durable import make_private_dir, write_durably, write_private
from relay.errors import InUseError
from relay.lock import DirectoryLock, owner
from relay.log import fields, logger
from relay.model import resolve_id
from relay.record import Record

__all__ = ["CaptureStore"]

_QUEUE_ID = re.compile(r"Q([0-9A-Za-z]+)\.")
_BATCH = 500
_PARALLEL = 2000  # messages to index before it pays to start worker processes
_LINGER = 2.0  # seconds the indexer thread waits for more before it ends


class CaptureStore:
    """A Maildir at ``root`` with a ``meta/`` directory and an index.

    ``max_messages`` (0: no limit) and ``max_age`` (seconds, 0: no limit) bound what is kept;
    ``events`` hears of every message stored, deleted or released.
    """

    def __init__(
        self,
        root: Path,
        *,
        max_messages: int = 0,
        max_age: float = 0.0,
        events: Events | None = None,
    ) -> None:
        self.root = root
        self.max_messages = max_messages
        self.max_age = max_age
        self.events = events or Events()
        self._host = socket.gethostname().replace("/", "\\057").replace(":", "\\072")
        self._index: CaptureIndex | None = None
        self._reconciling = threading.Lock()
        self._opening = threading.Lock()
        self._trail = Trail(self._maildir_state)
        self._indexer: threading.Thread | None = None
        self._lock = DirectoryLock(root)

    @property
    def index(self) -> CaptureIndex:
        """The index, opened on first use (the next :meth:`refresh` fills a new one)."""
        with self._opening:
            if self._index is None:
                self._index = CaptureIndex(self.root / "index.sqlite3")
            return self._index

    def create(self) -> None:
        """Create ``cur/ new/ tmp/ meta/`` (mode 0700) if missing (the index opens on first use)."""
        for name in ("cur", "new", "tmp", "meta"):
            make_private_dir(self.root / name)

    def claim(self) -> None:
        """Take the store for this server until :meth:`release` (or exit): a second server
        on it would fight over its files and sockets. Raises :class:`InUseError`."""
        if not self._lock.try_acquire():
            raise InUseError("capture store", self.root, owner(self.root))
        self._lock.claim()

    def release(self) -> None:
        """Index what is pending, then give the store up (see :meth:`claim`)."""
        self._drain()
        self._lock.release()

    def close(self) -> None:
        """Index what is pending, then close the index (it reopens on the next use); not
        while another thread uses it."""
        self._drain()
        with self._opening:
            if self._index is not None:
                self._index.close()
                self._index = None

    def store(self, record: Record, *, timeline: Sequence[Mapping[str, object]] = ()) -> Path:
        """Store one message durably (tmp, fsync, rename into ``new/``, fsync) with its metadata.

        The metadata file is written first and not synced on its own: after a crash a message
        may lack it (the index falls back to the message), but a message is never lost. The
        index entry is written after the return, by the store's indexer thread: only a
        failure to write the message itself raises. ``timeline`` lists the delivery
        attempts (relay mode).
        """
        queue_id = record.queue_id
        captured = CaptureMeta.of(record, timeline=timeline, captured_at=time.time())
        if record.original is not None:
            write_durably(self._original(queue_id), record.original, self.root / "tmp")
        self._write_meta(captured)
        now = time.time()
        name = f"{int(now)}.M{int(now * 1e6) % 1_000_000}P{os.getpid()}Q{queue_id}.{self._host}"
        target = self.root / "new" / name
        write_durably(
            target, record.message, self.root / "tmp", rename=partial(self._arrive, queue_id)
        )
        self.events.publish(MailEvent(MailEventKind.NEW, (queue_id,)))
        return target

    def _arrive(self, queue_id: str, source: Path, target: Path) -> None:
        """Rename a written message file into ``new/`` and line it up for the indexer."""
        with self._trail.change((queue_id, f"new/{target.name}")):
            os.rename(source, target)
        if self._trail.needs_indexer():
            self._indexer = threading.Thread(
                target=self._indexing, name="capture-index", daemon=True
            )
            self._indexer.start()

    def _indexing(self) -> None:
        """The indexer thread: index whatever is pending in one transaction at a time, until
        nothing comes for a while."""
        used = None
        while steps := self._trail.take(_BATCH, _LINGER):
            with self._trail.batch():
                used = self._index_steps(steps) or used
        if used is not None:
            used.close_thread()

    def _index_steps(self, steps: list[Step]) -> CaptureIndex | None:
        """Index the message files of ``steps``, drop earlier copies of their ids, apply
        retention; trouble is logged (the next reader or start catches up)."""
        jobs = [step.job for step in steps if step.job is not None]
        index = None
        try:
            found = [(step, _entry(self.root, step.job)) for step in steps if step.job]
            index = self.index
            with self._trail.transaction(index, steps) as settlement:
                earlier = []
                for step, entry in found:
                    if entry is None:
                        continue
                    previous = index.path_of(entry.id)
                    index.put([entry])
                    settlement.holds(step)
                    if previous is not None and previous != entry.path:
                        earlier.append(previous)
                if earlier:
                    with settlement.change():
                        for path in earlier:
                            (self.root / path).unlink(missing_ok=True)
            self._prune()
        except Exception as exc:  # noqa: BLE001 - the index is a cache: log, catch up later
            self._trail.fail(steps)
            ids = ", ".join(queue_id for queue_id, _ in jobs[:3]) + ", ..." * (len(jobs) > 3)
            unexpected = not isinstance(exc, sqlite3.Error | OSError)
            logger.warning("%s: capture index: %s; it will catch up", ids, exc, exc_info=unexpected)
        return index

    def _drain(self) -> None:
        """Index what is pending and let the indexer thread end."""
        indexer = self._indexer
        self._trail.stop()
        if indexer is not None:
            indexer.join()
        self._trail.stop(False)

    def mailbox(self) -> mailbox.Maildir:
        """The store as a stdlib :class:`mailbox.Maildir` (for reading)."""
        return mailbox.Maildir(self.root, factory=None, create=False)

    # -- reading ---------------------------------------------------------------------------

    # Every reader first waits for what was stored before it asked (see _trail.wait).

    def search(self, query: str, **options: Any) -> Page:
        """One page of messages matching Gmail ``query``; see :func:`relay.capture.search.find`."""
        self._trail.wait()
        self.refresh()
        return find(self.index, self.load, query, **options)

    def matching(self, query: str, *, recipient: str | None = None, timezone: str) -> list[str]:
        """Every id matching ``query`` (empty: all), newest first."""
        self._trail.wait()
        self.refresh()
        return find_ids(self.index, self.load, query, recipient=recipient, timezone=timezone)

    def resolve(self, queue_id: str) -> str | None:
        """The full id of ``queue_id`` or of the one indexed id it abbreviates (None: no
        such message); raises :class:`~relay.model.AmbiguousId` as ``queue`` commands do."""
        self._trail.wait()
        self.refresh()
        if self.index.path_of(queue_id) is not None:
            return queue_id
        return resolve_id(queue_id, self.index.ids_starting(queue_id, limit=10))

    def read(self, queue_id: str) -> tuple[bytes, CaptureMeta | None] | None:
        """The message bytes and metadata of ``queue_id`` (see :meth:`load`), or None if it
        is not stored."""
        self._trail.wait()
        for _ in range(2):  # a mail client may have moved the file: reconcile and retry
            path = self.index.path_of(queue_id)
            if path is not None:
                try:
                    return self.load(queue_id, path)
                except FileNotFoundError:
                    pass
            self.refresh()
        return None

    def original(self, queue_id: str) -> bytes | None:
        """The bytes ``queue_id`` came with, when they had to be repaired, else None."""
        try:
            return self._original(queue_id).read_bytes()
        except FileNotFoundError:
            return None

    def load(self, queue_id: str, path: str) -> tuple[bytes, CaptureMeta | None]:
        """The bytes of the message file ``path`` and the metadata of ``queue_id`` (None when
        it has none); metadata of the wrong shape or a newer version raises ``ValueError``."""
        return _load(self.root, queue_id, path)

    def item(self, queue_id: str) -> dict[str, Any] | None:
        """The list item of ``queue_id`` (what the list shows of it)."""
        self._trail.wait()
        text = self.index.item(queue_id)
        return json.loads(text) if text is not None else None

    def recipients(self) -> list[tuple[str, int]]:
        """Every recipient with the number of messages addressed to them, most first."""
        self._trail.wait()
        self.refresh()
        return self.index.recipients()

    # -- changing --------------------------------------------------------------------------

    def delete(self, ids: Sequence[str]) -> list[str]:
        """Delete messages (file, metadata, index row); return the ids that existed."""
        self._trail.wait()
        return self._delete(ids)

    def _delete(self, ids: Sequence[str]) -> list[str]:
        deleted: list[str] = []
        for start in range(0, len(ids), _BATCH):  # short transactions: the indexer never waits long
            with self._trail.transaction(self.index) as settlement:
                found = [(i, self.index.path_of(i)) for i in ids[start : start + _BATCH]]
                batch = [(queue_id, path) for queue_id, path in found if path is not None]
                with settlement.change():
                    for queue_id, path in batch:
                        (self.root / path).unlink(missing_ok=True)
                        (self.root / "meta" / f"{queue_id}.json").unlink(missing_ok=True)
                        self._original(queue_id).unlink(missing_ok=True)
                self.index.remove([queue_id for queue_id, _ in batch])
            deleted += [queue_id for queue_id, _ in batch]
        if deleted:
            self.events.publish(MailEvent(MailEventKind.DELETED, tuple(deleted)))
        return deleted

    def record_release(self, queue_id: str, attempts: Sequence[Mapping[str, object]]) -> None:
        """Add manual release ``attempts`` to the message's metadata and status."""
        found = self.read(queue_id)
        item = self.item(queue_id)
        if found is None or item is None:
            return
        meta = (found[1] or CaptureMeta.blank(queue_id)).released(attempts)
        self._write_meta(meta)
        item["status"] = delivery_status(meta).value
        with self.index.transaction():
            self.index.update_item(queue_id, item)
        self.events.publish(MailEvent(MailEventKind.CHANGED, (queue_id,)))

    def prune(self, now: float | None = None) -> list[str]:
        """Delete what is beyond ``max_messages`` or older than ``max_age``; return the ids."""
        self._trail.wait()
        return self._prune(now)

    def _prune(self, now: float | None = None) -> list[str]:
        if not (self.max_messages or self.max_age):
            return []
        before = (now or time.time()) - self.max_age if self.max_age else None
        expired = self.index.expired(self.max_messages, before)
        return self._delete(expired) if expired else []

    # -- keeping the index in line with the Maildir ----------------------------------------

    def refresh(self, *, workers: int = 1) -> bool:
        """Reconcile the index if the Maildir changed behind its back; True if it did.

        ``workers`` > 1 parses many new messages in that many forked processes: only from a
        single-threaded program (the ``mail`` verbs), never from the server. While one
        thread reconciles, the others read the index as it is.
        """
        if self._trail.accounts_for(self.index.info("maildir")):
            return False  # in line, but for this process's changes on their way in
        if not self._reconciling.acquire(blocking=False):
            return False
        try:
            self._reconcile(workers)
        finally:
            self._reconciling.release()
        return True

    def catch_up(self) -> None:
        """Index what reached the Maildir while nobody watched, then apply retention."""
        try:
            self.refresh()
            self.prune()
        except (sqlite3.Error, OSError) as exc:
            logger.error(
                "capture index: cannot catch up with %s: %s",
                self.root,
                exc,
                extra=fields(path=str(self.root), reason=str(exc)),
            )

    def reindex(self, *, workers: int = 1) -> int:
        """Rebuild the index from the Maildir; return how many messages it holds."""
        with self._reconciling:
            with self.index.transaction():
                self.index.clear()
            self._reconcile(workers)
        return self.index.count()

    def _reconcile(self, workers: int = 1) -> None:
        with self._trail.reconciling():
            self._reconcile_now(workers)

    def _reconcile_now(self, workers: int) -> None:
        state = self._maildir_state()  # taken first: what changes later shows up next time
        listing = self._listing()
        known = self.index.paths()
        # an entry the indexer thread wrote after the listing is not gone: its file is there
        gone = [i for i, p in known.items() if i not in listing and not (self.root / p).is_file()]
        moved = {i: p for i, p in listing.items() if i in known and known[i] != p}
        added = [(i, p) for i, p in listing.items() if i not in known]
        added.sort(key=lambda found: found[1][4:])  # by name: oldest first, as they came
        with _entries(self.root, added, workers) as entries:
            for _ in range(0, len(added), _BATCH):
                batch = [entry for entry in islice(entries, _BATCH) if entry is not None]
                with self.index.transaction():
                    self.index.put(batch)
        with self.index.transaction():
            self.index.remove(gone)
            self.index.move(moved)
            self.index.set_info("maildir", state)
        if gone or moved or added:
            logger.info(
                "capture index: %d added, %d moved, %d removed",
                len(added),
                len(moved),
                len(gone),
                extra=fields(added=len(added), moved=len(moved), removed=len(gone)),
            )
            self.events.publish(MailEvent(MailEventKind.RESET))

    def _listing(self) -> dict[str, str]:
        """Every message file by id; of two files with one id the later name wins."""
        found: dict[str, str] = {}
        for sub in ("new", "cur"):
            for item in os.scandir(self.root / sub):
                if item.name.startswith(".") or not item.is_file():
                    continue
                queue_id = _queue_id(item.name)
                path = f"{sub}/{item.name}"
                if queue_id not in found or found[queue_id][4:] < item.name:
                    found[queue_id] = path
        return found

    def _maildir_state(self) -> str:
        return " ".join(str((self.root / sub).stat().st_mtime_ns) for sub in ("new", "cur"))

    def _original(self, queue_id: str) -> Path:
        return self.root / "meta" / f"{queue_id}.original"

    def _write_meta(self, meta: CaptureMeta) -> None:
        write_private(self.root / "meta" / f"{meta.id}.json", meta.encode())


def _queue_id(name: str) -> str:
    """The queue id in a file name of ours, else a stable id made from the unique part."""
    unique = name.split(":", 1)[0]
    match = _QUEUE_ID.search(unique)
    if match:
        return match[1]
    return "X" + hashlib.sha1(unique.encode("utf-8", "surrogateescape")).hexdigest()[:17].upper()


def _load(root: Path, queue_id: str, path: str) -> tuple[bytes, CaptureMeta | None]:
    """The message and its metadata (None when missing or not JSON: the index falls back to
    the message); metadata of the wrong shape or a newer version raises ``ValueError``
    naming the file."""
    raw = (root / path).read_bytes()
    meta = root / "meta" / f"{queue_id}.json"
    try:
        return raw, CaptureMeta.decode(meta.read_bytes())
    except (FileNotFoundError, json.JSONDecodeError):
        return raw, None
    except ValueError as exc:
        raise ValueError(f"{meta}: {exc}") from None


def _entry(root: Path, found: tuple[str, str]) -> IndexEntry | None:
    """The index entry of one message file (None if it vanished meanwhile, or if it cannot
    be read: one bad file must not stop the index from catching up with the others)."""
    queue_id, path = found
    try:
        raw, meta = _load(root, queue_id, path)
        file_time = (root / path).stat().st_mtime
        entry = entry_of(queue_id, path, raw, meta, file_time=file_time)
    except FileNotFoundError:
        return None
    except Exception:  # noqa: BLE001 - one unreadable file must not stop indexing the rest
        logger.exception(
            "%s: capture index: cannot index %s; left out",
            queue_id,
            path,
            extra=fields(queue_id=queue_id, path=path),
        )
        return None
    if entry.unread is not None:
        logger.warning(
            "%s: capture index: header only: %s",
            queue_id,
            entry.unread,
            extra=fields(queue_id=queue_id, note=entry.unread),
        )
    return entry


@contextmanager
def _entries(
    root: Path, found: list[tuple[str, str]], workers: int
) -> Iterator[Iterator[IndexEntry | None]]:
    """The entries of ``found``, in order; parsed by ``workers`` processes when there are many."""
    if len(found) < _PARALLEL or workers < 2:
        yield (_entry(root, item) for item in found)
        return
    context = multiprocessing.get_context("fork")  # spawn would rerun an unguarded __main__
    with ProcessPoolExecutor(workers, mp_context=context) as pool:
        yield pool.map(partial(_entry, root), found, chunksize=max(1, _BATCH // workers))
