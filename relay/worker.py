"""One process of a split relay, started by the supervisor as ``python -m relay.worker``.

Standard input carries length-prefixed pickles from the supervisor: first an
:class:`Assignment`, then each configuration a reload puts in force. Its end (the supervisor
is gone) stops the process, as SIGTERM does. The line ``ready`` on standard output tells the
supervisor the process serves. Log lines go to standard error, as the supervisor's do.
"""

from __future__ import annotations

import asyncio
import pickle
import signal
import socket
import struct
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Literal

from relay import eventloop
from relay.config import RelayConfig
from relay.credentials import Credentials
from relay.errors import ConfigError, ExitCode, RelayError
from relay.log import fields, logger, setup_logging
from relay.service import Relay, Role, Split, refuse_reload

__all__ = ["READY", "Assignment", "encode", "main"]

#: What a process writes on standard output once it serves.
READY = b"ready\n"

_HEADER = struct.Struct(">I")


@dataclass(frozen=True, slots=True, kw_only=True)
class Assignment:
    """What the supervisor tells a new process: its role and slot, the configuration in
    force, the descriptors it inherited (listening sockets, its end of the wake-up pair)
    and the addresses bound, the run and metrics directories and the log format."""

    role: Role
    slot: int
    config: RelayConfig
    listen_fds: tuple[int, ...]
    bound: tuple[str, ...]
    wake_fd: int
    run: Path
    metrics: Path
    log_format: Literal["text", "json"]


def encode(value: Assignment | RelayConfig) -> bytes:
    """One message for a process's standard input."""
    data = pickle.dumps(value)
    return _HEADER.pack(len(data)) + data


def _read(stream: BinaryIO) -> object | None:
    """The next message on ``stream``; None at its end."""
    header = stream.read(_HEADER.size)
    if len(header) < _HEADER.size:
        return None
    (size,) = _HEADER.unpack(header)
    data = stream.read(size)
    return pickle.loads(data) if len(data) == size else None


def main() -> int:
    """Run the process the supervisor assigns; its exit code (as ``serve``'s)."""
    assignment = _read(sys.stdin.buffer)
    if not isinstance(assignment, Assignment):
        print("notify-relay worker: started by the supervisor only", file=sys.stderr)
        return ExitCode.USAGE
    setup_logging(fmt=assignment.log_format)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a terminal's ^C: the supervisor stops us
    signal.signal(signal.SIGHUP, signal.SIG_IGN)  # sent to every process: the supervisor reloads
    name = f"{assignment.role.value}.{assignment.slot}"
    try:
        eventloop.run(_serve(assignment))
    except ConfigError as exc:
        logger.error("%s: %s", name, exc, extra=fields(process=name, reason=str(exc)))
        return ExitCode.CONFIG
    except (RelayError, OSError) as exc:
        logger.error("%s: cannot start: %s", name, exc, extra=fields(process=name, reason=str(exc)))
        return ExitCode.OSERR
    return ExitCode.OK


async def _serve(assignment: Assignment) -> None:
    split = Split(
        role=assignment.role,
        sockets=tuple(socket.socket(fileno=fd) for fd in assignment.listen_fds),
        bound=assignment.bound,
        wake=socket.socket(fileno=assignment.wake_fd),
        run=assignment.run,
        metrics=assignment.metrics,
    )
    relay = Relay(assignment.config, split)
    await relay.start()
    loop = asyncio.get_running_loop()
    stopping = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stopping.set)

    def reload(config: RelayConfig, credentials: Credentials) -> None:
        try:
            relay.reload(config, credentials)
        except (RelayError, OSError) as exc:
            refuse_reload(exc)

    def listen() -> None:  # in a thread: reading credentials may run a password command
        while isinstance(config := _read(sys.stdin.buffer), RelayConfig):
            try:
                credentials = relay.credentials_of(config)
            except (RelayError, OSError) as exc:
                refuse_reload(exc)
                continue
            loop.call_soon_threadsafe(reload, config, credentials)
        loop.call_soon_threadsafe(stopping.set)

    threading.Thread(target=listen, name="supervisor", daemon=True).start()
    sys.stdout.buffer.write(READY)
    sys.stdout.buffer.flush()
    await stopping.wait()
    await relay.stop()


if __name__ == "__main__":  # run as relay.worker, whose classes the pickles name
    from relay.worker import main as run

    sys.exit(run())
