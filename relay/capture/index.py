"""The SQLite index beside the Maildir: list, search and retention over captured mail.

The Maildir stays the truth; the index can always be rebuilt from it. It records the
modification times of ``new/`` and ``cur/`` as of its last change, so a reader notices
files added, moved or removed behind its back and reconciles. Each thread gets its own
connection (WAL: readers never wait for the writer); writers serialise with
``BEGIN IMMEDIATE``, also across processes (``serve`` and the ``mail`` verbs). Methods
block: call them from a worker thread.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import NamedTuple

from relay.capture.entry import WORD_COLUMNS, IndexEntry
from relay.capture.sql import Bounds, Sql

__all__ = ["CaptureIndex", "Row"]

_VERSION = 1
_TOKENIZER = "unicode61 remove_diacritics 0 categories 'L* N* Co M* Pc' tokenchars '.|'"
_SCHEMA = f"""
CREATE TABLE messages (
    n INTEGER PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    path TEXT NOT NULL,
    received REAL NOT NULL,
    arrival REAL,
    size INTEGER NOT NULL,
    attachments INTEGER NOT NULL,
    message_id TEXT NOT NULL
);
-- newest first without sorting, and covering every condition on m: a scan reads no rows
CREATE INDEX messages_received
    ON messages (received, n, arrival, size, attachments, message_id);
CREATE INDEX messages_message_id ON messages (message_id);
CREATE TABLE items (n INTEGER PRIMARY KEY, item TEXT NOT NULL);
CREATE TABLE addresses (n INTEGER NOT NULL, field TEXT NOT NULL, address TEXT NOT NULL,
                        domain TEXT NOT NULL);
CREATE INDEX addresses_address ON addresses (field, address, n);
CREATE INDEX addresses_domain ON addresses (field, domain, n);
CREATE INDEX addresses_n ON addresses (n);
CREATE TABLE states (recipient TEXT NOT NULL, received REAL NOT NULL, n INTEGER NOT NULL,
                     state TEXT NOT NULL, PRIMARY KEY (recipient, received, n)) WITHOUT ROWID;
CREATE INDEX states_n ON states (n);
CREATE TABLE info (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE VIRTUAL TABLE words USING fts5({", ".join(WORD_COLUMNS)}, tokenize="{_TOKENIZER}");
PRAGMA user_version = {_VERSION}
"""
#: Per query: where rows come from, newest first (the chosen recipient's rows drive it).
_ALL = "FROM messages m INDEXED BY messages_received"
_RECIPIENT = "FROM states s CROSS JOIN messages m ON m.n = s.n"
_ITEM = "(SELECT item FROM items WHERE items.n = m.n)"


class Row(NamedTuple):
    """A message a query may match: ``sure`` when the index alone says it does."""

    n: int
    id: str
    path: str
    item: str
    state: str
    sure: bool


def _create_owner_only(path: Path) -> None:
    """Create the index file owner-only whatever the umask (SQLite gives -wal and -shm
    the file's own mode), and never open one that exists: closing any descriptor of it
    would drop every POSIX lock SQLite holds on it in this process, and another process
    would then delete the live -wal and -shm (sqlite.org/howtocorrupt.html, 2.2)."""
    with suppress(FileExistsError):
        os.close(os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600))


class CaptureIndex:
    """The index file at ``path``; created (or recreated, if of another version) on open."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._local = threading.local()
        self._connections: list[sqlite3.Connection] = []
        self._guard = threading.Lock()
        try:
            version = self._version()
        except sqlite3.DatabaseError as exc:
            if isinstance(exc, sqlite3.OperationalError):  # locked, unreadable: not ours to fix
                raise
            version = -1  # not a database at all
        if version not in (0, _VERSION):  # another layout: it is only a cache, start again
            self.close()
            for suffix in ("", "-wal", "-shm"):
                Path(f"{path}{suffix}").unlink(missing_ok=True)
        with self.transaction() as db:  # one creator, also across processes
            if self._version() != _VERSION:
                for statement in _SCHEMA.split(";"):
                    db.execute(statement)

    def _version(self) -> int:
        return int(self._db().execute("PRAGMA user_version").fetchone()[0])

    def _db(self) -> sqlite3.Connection:
        db: sqlite3.Connection | None = getattr(self._local, "db", None)
        if db is None:
            _create_owner_only(self.path)
            db = sqlite3.connect(
                self.path, timeout=30, isolation_level=None, check_same_thread=False
            )
            db.execute("PRAGMA journal_mode = WAL")
            db.execute("PRAGMA synchronous = NORMAL")
            self._local.db = db
            with self._guard:
                self._connections.append(db)
        return db

    def close(self) -> None:
        """Close every thread's connection: only when no other thread uses the index."""
        with self._guard:
            for db in self._connections:
                db.close()
            self._connections.clear()
        self._local = threading.local()

    def close_thread(self) -> None:
        """Close the calling thread's connection (a thread that ends is done with it)."""
        db: sqlite3.Connection | None = getattr(self._local, "db", None)
        if db is None:
            return
        self._local.db = None
        with self._guard:
            if db in self._connections:
                self._connections.remove(db)
        db.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """A write transaction; other writers (threads or processes) wait for it."""
        db = self._db()
        db.execute("BEGIN IMMEDIATE")
        try:
            yield db
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")

    # -- writing (inside transaction()) --------------------------------------------------

    def put(self, entries: Iterable[IndexEntry]) -> None:
        """Add entries, replacing any earlier entry of the same id."""
        db = self._db()
        for entry in entries:
            self._delete(db, [entry.id])
            cursor = db.execute(
                "INSERT INTO messages (id, path, received, arrival, size, attachments,"
                " message_id) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    entry.id,
                    entry.path,
                    entry.received,
                    entry.arrival,
                    entry.size,
                    entry.attachments,
                    entry.message_id,
                ),
            )
            n = cursor.lastrowid
            db.execute("INSERT INTO items VALUES (?, ?)", (n, _json(entry.item)))
            marks = ", ".join("?" * len(WORD_COLUMNS))
            db.execute(
                f"INSERT INTO words (rowid, {', '.join(WORD_COLUMNS)}) VALUES (?, {marks})",
                (n, *(entry.words[column] for column in WORD_COLUMNS)),
            )
            db.executemany(
                "INSERT INTO addresses VALUES (?, ?, ?, ?)",
                [(n, *address) for address in entry.addresses],
            )
            db.executemany(
                "INSERT OR REPLACE INTO states VALUES (?, ?, ?, ?)",
                [(rcpt, entry.received, n, state) for rcpt, state in entry.states],
            )

    def remove(self, ids: Sequence[str]) -> None:
        """Forget the messages ``ids``."""
        self._delete(self._db(), ids)

    def move(self, moves: dict[str, str]) -> None:
        """Record new file paths (a mail client moved messages from ``new/`` to ``cur/``)."""
        self._db().executemany(
            "UPDATE messages SET path = ? WHERE id = ?", [(p, i) for i, p in moves.items()]
        )

    def update_item(self, queue_id: str, item: dict[str, object]) -> None:
        """Replace the list item of ``queue_id`` (after a release changed its status)."""
        self._db().execute(
            "UPDATE items SET item = ? WHERE n = (SELECT n FROM messages WHERE id = ?)",
            (_json(item), queue_id),
        )

    def clear(self) -> None:
        """Forget everything (before a rebuild)."""
        for table in ("messages", "items", "addresses", "states", "words", "info"):
            self._db().execute(f"DELETE FROM {table}")

    def set_info(self, key: str, value: str) -> None:
        """Store a value of the index's own (such as the Maildir's state)."""
        self._db().execute("INSERT OR REPLACE INTO info VALUES (?, ?)", (key, value))

    @staticmethod
    def _delete(db: sqlite3.Connection, ids: Sequence[str]) -> None:
        for start in range(0, len(ids), 500):
            chunk = list(ids[start : start + 500])
            marks = ", ".join("?" * len(chunk))
            rows = f"SELECT n FROM messages WHERE id IN ({marks})"
            tables = (("words", "rowid"), ("items", "n"), ("addresses", "n"), ("states", "n"))
            for table, column in tables:
                db.execute(f"DELETE FROM {table} WHERE {column} IN ({rows})", chunk)
            db.execute(f"DELETE FROM messages WHERE id IN ({marks})", chunk)

    # -- reading ---------------------------------------------------------------------------

    def info(self, key: str) -> str | None:
        """A value stored with :meth:`set_info`."""
        row = self._db().execute("SELECT value FROM info WHERE key = ?", (key,)).fetchone()
        return row[0] if row else None

    def paths(self) -> dict[str, str]:
        """Every indexed id and its file path."""
        return dict(self._db().execute("SELECT id, path FROM messages"))

    def path_of(self, queue_id: str) -> str | None:
        """The file path of ``queue_id``, or None if it is not indexed."""
        row = self._db().execute("SELECT path FROM messages WHERE id = ?", (queue_id,)).fetchone()
        return row[0] if row else None

    def ids_starting(self, prefix: str, limit: int = 2) -> list[str]:
        """Up to ``limit`` ids that start with ``prefix`` (to resolve abbreviated ids)."""
        rows = self._db().execute(
            "SELECT id FROM messages WHERE id >= ? AND id < ? ORDER BY id LIMIT ?",
            (prefix, prefix + "\U0010ffff", limit),
        )
        return [row[0] for row in rows]

    def item(self, queue_id: str) -> str | None:
        """The list item (JSON text) of ``queue_id``."""
        row = (
            self._db()
            .execute(f"SELECT {_ITEM} FROM messages m WHERE m.id = ?", (queue_id,))
            .fetchone()
        )
        return row[0] if row else None

    def count(self) -> int:
        """How many messages are indexed."""
        return int(self._db().execute("SELECT count(*) FROM messages").fetchone()[0])

    def states(self, recipient: str) -> list[str]:
        """The distinct state keys of ``recipient``'s messages."""
        rows = self._db().execute(
            "SELECT DISTINCT state FROM states WHERE recipient = ?", (recipient,)
        )
        return [row[0] for row in rows]

    def recipients(self) -> list[tuple[str, int]]:
        """Every recipient with the number of messages addressed to them, most first."""
        return list(
            self._db().execute(
                "SELECT recipient, count(*) AS c FROM states GROUP BY recipient"
                " ORDER BY c DESC, recipient"
            )
        )

    def rows(
        self,
        where: Bounds,
        *,
        recipient: str | None = None,
        among: Sequence[str] | None = None,
        maybe_only: bool = False,
    ) -> Iterator[Row]:
        """Rows within ``where.upper``, newest first (only the undecided ones if asked).

        Rows stream in index order, so a caller that stops early pays for what it read.
        """
        condition = _and_not(where.upper, where.lower) if maybe_only else where.upper
        sure = "1" if where.exact else where.lower.text
        state, order = ("s.state", "s") if recipient else ("''", "m")
        select = Sql(
            f"SELECT m.n, m.id, m.path, {_ITEM}, {state}, {sure}",
            () if where.exact else where.lower.params,
        )
        sql, params = _query(select, condition, recipient, among)
        sql += f" ORDER BY {order}.received DESC, {order}.n DESC"
        for row in self._db().execute(sql, params):
            yield Row(row[0], row[1], row[2], row[3], row[4], bool(row[5]))

    def counts(
        self, where: Bounds, *, recipient: str | None = None, among: Sequence[str] | None = None
    ) -> tuple[int, int]:
        """How many rows meet ``where.upper`` and how many of them ``where.lower``."""
        if where.exact:
            select = Sql("SELECT count(*), count(*)")
        else:
            select = Sql(
                f"SELECT count(*), total(CASE WHEN {where.lower.text} THEN 1 ELSE 0 END)",
                where.lower.params,
            )
        sql, params = _query(select, where.upper, recipient, among)
        upper, lower = self._db().execute(sql, params).fetchone()
        return int(upper), int(lower)

    def expired(self, max_messages: int, before: float | None) -> list[str]:
        """Ids beyond the newest ``max_messages`` (0: no limit) or received before ``before``."""
        db, ids = self._db(), []
        if before is not None:
            ids += [
                r[0] for r in db.execute("SELECT id FROM messages WHERE received < ?", (before,))
            ]
        if max_messages:
            ids += [
                row[0]
                for row in db.execute(
                    "SELECT id FROM messages ORDER BY received DESC, n DESC LIMIT -1 OFFSET ?",
                    (max_messages,),
                )
            ]
        return list(dict.fromkeys(ids))


def _query(
    select: Sql, condition: Sql, recipient: str | None, among: Sequence[str] | None
) -> tuple[str, tuple[object, ...]]:
    params = (*select.params, *condition.params)
    if recipient is None:
        sql = f"{select.text} {_ALL} WHERE {condition.text}"
    else:
        sql = f"{select.text} {_RECIPIENT} WHERE s.recipient = ? AND {condition.text}"
        params = (*select.params, recipient, *condition.params)
    if among is not None:
        sql += f" AND m.id IN ({', '.join('?' * len(among))})"
        params = (*params, *among)
    return sql, params


def _and_not(upper: Sql, lower: Sql) -> Sql:
    return Sql(f"({upper.text}) AND NOT ({lower.text})", (*upper.params, *lower.params))


def _json(value: object) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
