"""Durable file writes: the only way the relay puts bytes on disk that it has promised to keep.

Everything it creates is owner-only whatever the umask: files 0600, directories 0700
(:func:`make_private_dir`, :func:`write_private`).
"""

from __future__ import annotations

import fcntl
import os
import threading
from collections.abc import Callable, Iterable
from pathlib import Path

__all__ = [
    "DirectorySync",
    "fill_durably",
    "fsync_dir",
    "make_private_dir",
    "remove_unclaimed",
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


def reserve_durably(directory: Path, names: Iterable[str]) -> list[tuple[str, int]]:
    """Create an empty owner-only file for each of ``names`` in ``directory`` and make the
    new names durable with one directory fsync: :func:`fill_durably` can then store data in
    them with one flush. Returns each name made with an open descriptor that holds the file
    locked (``flock``) for as long as the caller keeps it: a file shows under its name
    locked already (it is made under a dot name, locked, then renamed), so
    :func:`remove_unclaimed` takes only the files of a process that died. The descriptor
    is read-only: no file stays open for writing (the file system can still be remounted
    read-only). Raises ``OSError`` (the files made so far are removed)."""
    made: list[tuple[str, int]] = []
    try:
        for name in names:
            scratch = directory / f".{name}"
            fd = os.open(scratch, os.O_RDONLY | os.O_CREAT | os.O_EXCL, 0o600)
            try:  # 0600 whatever the umask: one without u+w would leave it unwritable
                os.fchmod(fd, 0o600)
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                os.rename(scratch, directory / name)
            except OSError:
                os.close(fd)
                scratch.unlink(missing_ok=True)
                raise
            made.append((name, fd))
        fsync_dir(directory)
    except OSError:
        for name, fd in made:
            (directory / name).unlink(missing_ok=True)
            os.close(fd)
        raise
    return made


def fill_durably(lock: int, path: Path, data: bytes) -> bool:
    """Write ``data`` into the empty file ``path`` that :func:`reserve_durably` made (and
    ``lock`` holds), flush it (``fdatasync``: the new size goes with the data; the name is
    durable already), then close ``lock``. False if the file was removed meanwhile (nothing
    is kept then: write ``data`` another way).

    A reader sees an empty file or a beginning of ``data``, then all of it. On an error the
    file is removed and the ``OSError`` propagates."""
    try:
        try:
            fd = os.open(path, os.O_WRONLY | os.O_NOFOLLOW)
        except FileNotFoundError:
            return False
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fdatasync(fd)
            return os.fstat(fd).st_nlink > 0
        except OSError:
            path.unlink(missing_ok=True)
            raise
        finally:
            os.close(fd)
    finally:
        os.close(lock)


def remove_unclaimed(directory: Path) -> list[str]:
    """Remove the empty files in ``directory`` that no process holds locked: those
    :func:`reserve_durably` made for a process that has died. Returns their names."""
    removed = []
    for entry in os.scandir(directory):
        if entry.name.startswith(".") or not entry.is_file(follow_symlinks=False):
            continue
        try:
            if entry.stat().st_size:
                continue
            fd = os.open(entry.path, os.O_RDONLY | os.O_NOFOLLOW)
        except OSError:
            continue  # gone meanwhile
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            if os.fstat(fd).st_size == 0:  # its owner did not fill it just before dying
                os.unlink(entry.path)
                removed.append(entry.name)
        except OSError:
            pass  # locked: a live process's reservation
        finally:
            os.close(fd)
    return removed


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
