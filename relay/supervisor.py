"""The supervisor of a split relay: ``serve`` in relay mode with ``workers`` above 0.

It holds the queue (lock and ``relay.pid``), binds the SMTP listeners once, and runs the
other processes as ``python -m relay.worker`` (:mod:`relay.worker`)::

    supervisor ─┬─ deliver.0    queue manager, upstream sessions, control socket, web, metrics
                ├─ receive.1    SMTP on the shared listening sockets, cleanup, spool write
                └─ receive.N

Receive workers answer 250 once a message is in the spool and wake the delivery process
with a datagram (:mod:`relay.queue.wakeup`). A process that ends is started again (at
once, or after a growing pause when it keeps ending young), and a receive worker's death
makes the delivery process look at every incoming message. SIGHUP loads the config here
and hands it to every process; SIGTERM stops the receive workers first, then delivery.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import socket
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Literal

from relay.config import RelayConfig
from relay.credentials import Credentials, read_credentials
from relay.durable import make_private_dir, write_private
from relay.errors import ExitCode
from relay.lock import DirectoryLock
from relay.log import fields, logger
from relay.processes import TABLE, ProcessState, write_table
from relay.queue.control import take
from relay.queue.spool import Spool
from relay.queue.wakeup import WakeSender, socket_pair
from relay.receive.sockets import address, bind, unbind
from relay.service import Role, announce, check_reload, reloader, restart_only_kept
from relay.worker import READY, Assignment, encode

__all__ = ["Supervisor", "supervise", "worker_count"]

#: Seconds a process must run to count as started well (its next restart is immediate).
_STEADY = 10.0
#: The longest pause before restarting a process that keeps ending young.
_LONGEST_PAUSE = 30.0
#: Seconds a process gets to stop on SIGTERM before it is killed.
_STOP_TIMEOUT = 30.0
#: The file in the run directory naming the metrics directory in use.
_METRICS_RECORD = "metrics.path"
#: Seconds a new process gets to say it serves.
_START_TIMEOUT = 60.0


def worker_count(config: RelayConfig) -> int:
    """Receive workers to run: ``workers``, or one per CPU this process may use."""
    if config.workers is not None:
        return config.workers
    return len(os.sched_getaffinity(0))


class _Process:
    """One slot: the role, the process in it, and its history."""

    def __init__(self, role: Role, slot: int) -> None:
        self.role, self.slot = role, slot
        self.process: asyncio.subprocess.Process | None = None
        self.restarts = 0
        self.young_ends = 0  # ends in a row within _STEADY of the start
        self.started = 0.0

    @property
    def name(self) -> str:
        return f"{self.role.value}.{self.slot}"

    def state(self) -> ProcessState:
        pid = self.process.pid if self.process and self.process.returncode is None else 0
        return ProcessState(self.role.value, self.slot, pid, self.restarts)


class Supervisor:
    """Runs a split relay's processes until told to stop."""

    def __init__(
        self, config: RelayConfig, *, log_format: Literal["text", "json"], workers: int
    ) -> None:
        self.config = config
        self.log_format = log_format
        self.root = config.queue.path
        self.run = self.root / "run"
        self.lock = DirectoryLock(self.root)
        self.listen = config.listen  # what it binds, for its whole life: reloads do not
        self.sockets: list[socket.socket] = []
        self.bound: tuple[str, ...] = ()
        self.wake_send, self.wake_receive = socket_pair()
        self.wake = WakeSender(self.wake_send)  # a full socket: its rescan goes later
        self.processes = [_Process(Role.DELIVER, 0)] + [
            _Process(Role.RECEIVE, n) for n in range(1, workers + 1)
        ]
        self.stopping = asyncio.Event()
        self._watchers: list[asyncio.Task[None]] = []
        self.metrics: Path | None = None  # every process's counts, for the relay's life

    async def start(self) -> int:
        """Take the queue, bind, and start every process; an exit code if one cannot start
        (the others are stopped), else 0."""
        make_private_dir(self.root)
        await take(self.lock, 10.0)
        spool = Spool(self.root)  # cleared while no process of this relay runs
        await asyncio.to_thread(spool.create)
        await asyncio.to_thread(spool.recover)
        make_private_dir(self.run)
        self.metrics = self._make_metrics()
        for listener in self.listen:
            self.sockets += bind(listener)
        self.bound = tuple(address(sock) for sock in self.sockets)
        for group in ([self.processes[0]], self.processes[1:]):  # delivery first: it resumes
            codes = await asyncio.gather(*(self._spawn(process) for process in group))
            failed = [code for code in codes if code is not None]
            if failed:
                await self.stop()
                return failed[0]
        # for the certificate it names; the upstream's secrets are the delivery process's
        announce(self.config, self.bound, read_credentials(self.config, upstream=False))
        self._watchers = [
            asyncio.create_task(self._watch(process), name=process.name)
            for process in self.processes
        ]
        return ExitCode.OK

    def _make_metrics(self) -> Path:
        """A new directory for every process's counts, in memory; the one an earlier run left
        (its supervisor killed) is removed first."""
        record = self.run / _METRICS_RECORD
        with contextlib.suppress(OSError):
            shutil.rmtree(record.read_text(), ignore_errors=True)
        made = Path(tempfile.mkdtemp(prefix="notify-relay-metrics.", dir=_memory()))
        with contextlib.suppress(OSError):  # a full disk: only a leftover is at stake
            write_private(record, str(made).encode())
        return made

    async def reload(self, config: RelayConfig, _: Credentials) -> None:
        """Hand ``config``, whose credentials were read (so it loads), to every process;
        each reads the credentials it needs itself."""
        await asyncio.to_thread(check_reload, self.config, config)  # refuse what they would
        self.config = restart_only_kept(self.config, config)  # for the processes it starts
        for process in self.processes:
            await self._tell(process, encode(config))

    async def stop(self) -> None:
        """Stop the receive workers, then delivery; give the sockets and the queue up."""
        self.stopping.set()
        for watcher in self._watchers:
            watcher.cancel()
        receivers = [process for process in self.processes if process.role == Role.RECEIVE]
        await asyncio.gather(*(self._end(process) for process in receivers))
        await self._end(self.processes[0])
        self._write_table()
        for sock in self.sockets:
            sock.close()
        for listener in self.listen:
            unbind(listener)
        if self.metrics is not None:
            shutil.rmtree(self.metrics, ignore_errors=True)
        self.lock.release()

    async def _spawn(self, process: _Process) -> int | None:
        """Start ``process``; None once it serves, else its exit code."""
        inherited = [sock.fileno() for sock in self.sockets] if process.role == Role.RECEIVE else []
        wake = self.wake_send if process.role == Role.RECEIVE else self.wake_receive
        assert self.lock.fd is not None
        assert self.metrics is not None
        process.process, process.started = None, time.monotonic()
        try:
            child = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "relay.worker",
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                pass_fds=(*inherited, wake.fileno(), self.lock.fd),  # the lock lives while we do
                env={**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(self.metrics)},
            )
        except OSError as exc:  # no process to watch: _watch tries again after a pause
            logger.error(
                "supervisor: cannot start %s: %s",
                process.name,
                exc,
                extra=fields(process=process.name, reason=str(exc)),
            )
            return ExitCode.OSERR
        process.process = child
        assignment = Assignment(
            role=process.role,
            slot=process.slot,
            config=self.config,
            listen_fds=tuple(inherited),
            bound=self.bound,
            wake_fd=wake.fileno(),
            run=self.run,
            metrics=self.metrics,
            log_format=self.log_format,
        )
        await self._tell(process, encode(assignment))
        assert child.stdout is not None
        try:
            line = await asyncio.wait_for(child.stdout.readline(), _START_TIMEOUT)
        except TimeoutError:
            line = b""
        if line != READY:
            await self._end(process)
            return child.returncode or ExitCode.OSERR
        self._write_table()
        return None

    async def _watch(self, process: _Process) -> None:
        """Start ``process`` again whenever it ends (or fails to start), until the relay stops."""
        while True:
            if process.process is None:  # it could not be started at all
                await asyncio.sleep(self._pause(process))
                await self._spawn(process)
                continue
            status = await process.process.wait()
            pause = self._pause(process)
            logger.error(
                "supervisor: %s (pid %d) %s; starting it again%s",
                process.name,
                process.process.pid,
                _ending(status),
                f" in {pause:.1f} s" if pause else "",
                extra=fields(
                    process=process.name,
                    process_pid=process.process.pid,
                    reason=_ending(status),
                    retry_in=pause,
                ),
            )
            process.restarts += 1
            self._write_table()
            if process.role == Role.RECEIVE:  # it may have queued mail without saying so
                self.wake.rescan()
            await asyncio.sleep(pause)
            await self._spawn(process)

    def _pause(self, process: _Process) -> float:
        """No pause after a steady run; else 0.5 s, doubled per young end, up to 30 s."""
        if time.monotonic() - process.started >= _STEADY:
            process.young_ends = 0
            return 0.0
        process.young_ends += 1
        return min(_LONGEST_PAUSE, 0.5 * (1 << min(process.young_ends - 1, 10)))

    async def _tell(self, process: _Process, message: bytes) -> None:
        child = process.process
        if child is None or child.stdin is None or child.returncode is not None:
            return
        with contextlib.suppress(ConnectionError):
            child.stdin.write(message)
            await child.stdin.drain()

    async def _end(self, process: _Process) -> None:
        """SIGTERM ``process`` and wait for it (SIGKILL after :data:`_STOP_TIMEOUT`)."""
        child = process.process
        if child is None or child.returncode is not None:
            return
        _signal(child.pid, signal.SIGTERM)
        try:
            await asyncio.wait_for(child.wait(), _STOP_TIMEOUT)
        except TimeoutError:
            logger.error(
                "supervisor: %s (pid %d) did not stop; killed",
                process.name,
                child.pid,
                extra=fields(process=process.name, process_pid=child.pid),
            )
            _signal(child.pid, signal.SIGKILL)
            await child.wait()

    def _write_table(self) -> None:
        """Record the processes for ``/metrics`` and ``/readyz``; what cannot be written (a
        full disk) is logged, and the processes go on as they must."""
        path = self.run / TABLE
        try:
            write_table(path, [process.state() for process in self.processes])
        except OSError as exc:
            logger.warning(
                "supervisor: cannot write %s: %s",
                path,
                exc,
                extra=fields(path=str(path), reason=str(exc)),
            )


def _signal(pid: int, signum: signal.Signals) -> None:
    """Signal a child not known to have ended. Not ``Process.terminate()``: its poll reaps a
    child that just ended before asyncio's watcher does, and the status is lost (255)."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signum)


def _memory() -> str | None:
    """Where the metrics files go: memory (``/dev/shm``) where there is one, not the queue's
    disk; a process whose mapped file finds that disk full dies of SIGBUS."""
    return "/dev/shm" if os.path.isdir("/dev/shm") else None


def _ending(status: int) -> str:
    """How a process ended, from its return code (negative: a signal)."""
    if status < 0:
        return f"was killed by {signal.Signals(-status).name}"
    return f"exited with status {status}"


async def supervise(
    config: RelayConfig,
    *,
    reload: Callable[[], RelayConfig] | None = None,
    log_format: Literal["text", "json"] = "text",
) -> int:
    """Run the split relay until SIGTERM or SIGINT; on SIGHUP, hand ``reload()``'s config to
    every process (a config that does not load is refused, the one in force stays).
    Return the exit code."""
    supervisor = Supervisor(config, log_format=log_format, workers=worker_count(config))
    loop = asyncio.get_running_loop()  # handled from the start: starting takes seconds
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, supervisor.stopping.set)
    if reload is not None:
        loop.add_signal_handler(signal.SIGHUP, reloader(supervisor.reload, reload))
    code = await supervisor.start()
    if code != ExitCode.OK:
        return code
    await supervisor.stopping.wait()
    logger.info("stopping")
    await supervisor.stop()
    return ExitCode.OK
