"""Who owns a directory: an exclusive ``flock`` on it, and the owner's pid in ``relay.pid``.

A running server holds the lock on its queue and on its capture store for as long as it
runs, so a second server on either refuses to start (naming the first one's pid) instead
of taking over its sockets and files. The lock goes away with the process, even a killed
one; the pid file is only a hint for the message.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from relay.durable import write_private

__all__ = ["PID_NAME", "DirectoryLock", "owner"]

PID_NAME = "relay.pid"


class DirectoryLock:
    """An exclusive ``flock`` on directory ``root``; released on :meth:`release` or exit."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.fd: int | None = None

    def try_acquire(self) -> bool:
        """Take the lock if nobody holds it; True on success."""
        fd = os.open(self.root, os.O_RDONLY | os.O_DIRECTORY)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        self.fd = fd
        return True

    def claim(self) -> None:
        """Write this process's pid for :func:`owner` (call once the lock is held)."""
        write_private(self.root / PID_NAME, f"{os.getpid()}\n".encode())

    def release(self) -> None:
        """Give the lock up (the pid file goes with it if it is still ours)."""
        if self.fd is None:
            return
        if owner(self.root) == os.getpid():
            (self.root / PID_NAME).unlink(missing_ok=True)
        os.close(self.fd)
        self.fd = None


def owner(root: Path) -> int | None:
    """The pid the server holding ``root`` wrote, or None."""
    try:
        return int((root / PID_NAME).read_text().strip())
    except (OSError, ValueError):
        return None
