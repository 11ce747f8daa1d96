"""Durable file writes: the only way the relay puts bytes on disk that it has promised to keep.

Everything it creates is owner-only whatever the umask: files 0600, directories 0700
(:func:`make_private_dir`, :func:`write_private`).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterable
from pathlib import Path

__all__ = [
    "DirectorySync",
    "fill_durably",
    "fsync_dir",
    "make_private_dir",
    "reserve_durably",
    "write_durably",
    "write_private",
]


def write_durably(
    target: Path,
    data: bytes,
    scratch: Path,
    *,
    directory: DirectorySync | None = None,
    rename: Callable[[Path, Path], None] = os.rename,
) -> None:
    """Write ``data`` to ``scratch``, fsync it, rename it to ``target`` and fsync the directory.

    ``scratch`` must be on the same file system as ``target``. After a crash the target is
    either absent or complete, never partial. On error the scratch file is removed and the
    ``OSError`` propagates. ``directory`` shares the directory fsync with concurrent writers;
    ``rename`` does the renaming (a caller may note what it changed around it).
    """
    temporary = scratch / f"{target.parent.name}-{target.name}"
    try:
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.fchmod(fd, 0o600)  # whatever the umask (0277 would make it 0400)
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        rename(temporary, target)
    except OSError:
        temporary.unlink(missing_ok=True)
        raise
    if directory is None:
        fsync_dir(target.parent)
    else:
        directory.sync()


def reserve_durably(directory: Path, names: Iterable[str]) -> list[str]:
    """Create an empty owner-only file for each of ``names`` in ``directory`` and make the
    new entries durable with one directory fsync: :func:`fill_durably` can then store data
    in them with one flush. Returns the names made; raises ``OSError`` (the files made so
    far are removed)."""
    made: list[str] = []
    try:
        for name in names:
            fd = os.open(directory / name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            made.append(name)
            try:  # 0600 whatever the umask: one without u+w would leave it unwritable
                os.fchmod(fd, 0o600)
            finally:
                os.close(fd)
        fsync_dir(directory)
    except OSError:
        for name in made:
            (directory / name).unlink(missing_ok=True)
        raise
    return made


def fill_durably(path: Path, data: bytes) -> None:
    """Write ``data`` into the empty file ``path`` made by :func:`reserve_durably`, and flush
    it (``fdatasync``: the new size goes with the data; the name is durable already).

    The file is never created here (``FileNotFoundError`` if it is gone) and never
    truncated: a reader sees an empty file or a beginning of ``data``, then all of it. On
    another error the file is removed and the ``OSError`` propagates."""
    fd = os.open(path, os.O_WRONLY)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fdatasync(fd)
    except OSError:
        path.unlink(missing_ok=True)
        raise
    finally:
        os.close(fd)


def make_private_dir(path: Path) -> None:
    """Create ``path`` and its missing parents with mode 0700 (not the umask's choice);
    directories that exist already are left as they are."""
    missing = [p for p in (path, *path.parents) if not p.exists()]
    for directory in reversed(missing):
        try:
            directory.mkdir(mode=0o700)
        except FileExistsError:  # made meanwhile by someone else: theirs to set
            continue
        os.chmod(directory, 0o700)  # mkdir's mode passes through the umask


def write_private(path: Path, data: bytes) -> None:
    """Replace the contents of ``path`` with ``data``; a new file gets mode 0600 (not
    synced: for what a crash may lose, such as metadata the index can rebuild)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
    finally:
        os.close(fd)


def fsync_dir(path: Path) -> None:
    """Flush a directory's entries (a rename is not durable until its directory is synced)."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class DirectorySync:
    """Group commit for one directory: concurrent callers share one fsync.

    A caller's entries are durable once an fsync that *started* after its rename has
    finished; callers that arrive while one runs wait for the next, which covers them all.
    Under load this turns N directory fsyncs into about two.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Condition()
        self._requested = 0
        self._done = 0
        self._running = False

    def sync(self) -> None:
        """Return once every rename made in the directory before this call is durable."""
        with self._lock:
            self._requested += 1
            ticket = self._requested
            while self._done < ticket:
                if self._running:
                    self._lock.wait()
                    continue
                self._running, covered = True, self._requested
                self._lock.release()
                try:
                    fsync_dir(self.path)
                finally:
                    self._lock.acquire()
                    self._running = False
                    self._lock.notify_all()
                self._done = max(self._done, covered)
