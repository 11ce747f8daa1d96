"""How ``notify-relay queue`` reaches the server that owns a queue directory.

A running server holds an exclusive ``flock`` on the queue directory, writes its pid to
``relay.pid`` and listens on ``control.sock`` there (mode 0600, so only the relay's user
and root get in). A queue command sends one JSON line, ``{"action": "hold", "ids": [...]}``,
and reads one JSON line back (a :class:`~relay.queue.actions.Report`): the server applies
the action itself, between deliveries, so nothing races it. When no server answers and
the lock is free, the command applies the action to the spool directly while holding the
lock, so a server starting meanwhile waits for it.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path

from relay.durable import make_private_dir
from relay.errors import SpoolError
from relay.lock import DirectoryLock as QueueLock
from relay.lock import owner
from relay.log import fields, logger
from relay.queue.actions import Action, Report

__all__ = ["ControlServer", "QueueLock", "owner", "send", "take"]

SOCKET_NAME = "control.sock"

Handler = Callable[[Action, Sequence[str]], Awaitable[Report]]


async def take(lock: QueueLock, wait: float) -> None:
    """Take ``lock`` and write this process's pid, waiting up to ``wait`` s for whoever
    holds it (a queue command finishing, or the processes of a relay that is stopping)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait
    while not lock.try_acquire():
        if loop.time() > deadline:
            raise SpoolError(
                f"queue {lock.root} is in use by another notify-relay "
                f"(pid {owner(lock.root) or 'unknown'})"
            )
        await asyncio.sleep(0.1)
    lock.claim()


def _address(root: Path, fd: int) -> str:
    """The socket's address; through ``/proc`` when the path is too long for AF_UNIX."""
    path = str(root / SOCKET_NAME)
    return path if len(os.fsencode(path)) < 100 else f"/proc/self/fd/{fd}/{SOCKET_NAME}"


class ControlServer:
    """The running server's end: lock, pid file and control socket in the queue directory."""

    def __init__(self, root: Path, handle: Handler, *, locked: bool = True) -> None:
        """``locked=False``: the supervisor of a split relay holds the lock and the pid
        file; this process only serves the socket."""
        self.root = root
        self.handle = handle
        self._lock = QueueLock(root) if locked else None
        self._server: asyncio.Server | None = None

    async def start(self, *, wait: float = 10.0) -> None:
        """Take the queue (waiting up to ``wait`` s for a queue command to finish) and listen."""
        try:
            make_private_dir(self.root)
        except OSError as exc:
            raise SpoolError(f"cannot create queue directory {self.root}: {exc}") from exc
        if self._lock is not None:
            await take(self._lock, wait)
        (self.root / SOCKET_NAME).unlink(missing_ok=True)  # left by a killed server
        fd = os.open(self.root, os.O_RDONLY | os.O_DIRECTORY)
        try:
            self._server = await asyncio.start_unix_server(
                self._serve, path=_address(self.root, fd)
            )
        finally:
            os.close(fd)
        os.chmod(self.root / SOCKET_NAME, 0o600)

    async def stop(self) -> None:
        """Stop listening and give the queue up."""
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            (self.root / SOCKET_NAME).unlink(missing_ok=True)
        if self._lock is not None:
            self._lock.release()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request = json.loads(await asyncio.wait_for(reader.readline(), 10))
            action, ids = Action(request["action"]), [str(item) for item in request["ids"]]
        except (ValueError, KeyError, TypeError, TimeoutError) as exc:
            report = Report(refused=(f"bad control request: {exc}",))
        else:
            logger.info(
                "queue: %s %s (operator request)",
                action.value,
                " ".join(ids),
                extra=fields(action=action.value, queue_id=" ".join(ids)),
            )
            report = await self.handle(action, ids)
        writer.write(json.dumps(report.as_dict()).encode() + b"\n")
        try:
            await writer.drain()
        finally:
            writer.close()


def send(root: Path, action: Action, ids: Sequence[str], *, timeout: float = 60.0) -> Report | None:
    """Ask the server that owns ``root`` to apply ``action``; None when no server listens.

    Raises ``PermissionError`` when this user may not use the socket, and ``OSError``
    when the server does not answer in time.
    """
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(timeout)
            try:
                sock.connect(_address(root, fd))
            except (FileNotFoundError, ConnectionRefusedError):
                return None
            request = {"action": action.value, "ids": list(ids)}
            sock.sendall(json.dumps(request).encode() + b"\n")
            reply = sock.makefile("rb").readline()
    finally:
        os.close(fd)
    try:
        data = json.loads(reply)
        return Report(tuple(data["done"]), tuple(data["refused"]))
    except (ValueError, KeyError, TypeError):
        raise OSError(f"the server gave no usable answer: {reply[:200]!r}") from None
