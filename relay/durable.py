"""Durable file writes: the only way the relay puts bytes on disk that it has promised to keep."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["fsync_dir", "write_durably"]


def write_durably(target: Path, data: bytes, scratch: Path) -> None:
    """Write ``data`` to ``scratch``, fsync it, rename it to ``target`` and fsync the directory.

    ``scratch`` must be on the same file system as ``target``. After a crash the target is
    either absent or complete, never partial. On error the scratch file is removed and the
    ``OSError`` propagates.
    """
    temporary = scratch / f"{target.parent.name}-{target.name}"
    try:
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.rename(temporary, target)
    except OSError:
        temporary.unlink(missing_ok=True)
        raise
    fsync_dir(target.parent)


def fsync_dir(path: Path) -> None:
    """Flush a directory's entries (a rename is not durable until its directory is synced)."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
