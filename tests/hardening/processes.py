"""``notify-relay serve`` as a child process: start, SIGKILL, restart, and read its memory.

Used where the relay must be a process of its own: kill -9 loops, RSS budgets (the test
process's own memory would blur them) and strace.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml
from helpers import wait_for_port

__all__ = ["RelayProcess", "children", "memory_kib", "write_config"]


def write_config(path: Path, **sections: Any) -> Path:
    """Write a relay YAML config (web page off) and return its path."""
    path.write_text(yaml.safe_dump({"web": {"enabled": False}, **sections}))
    return path


def memory_kib(pid: int, field: str = "VmHWM") -> int:
    """A memory figure from /proc (``VmHWM``: peak RSS; ``VmRSS``: now) of process ``pid``
    and its children: a split relay's supervisor with its receive and delivery processes."""
    return sum(_status(each, field) for each in (pid, *children(pid)))


def children(pid: int) -> list[int]:
    """The pids of ``pid``'s child processes."""
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        found += [int(child) for child in (task / "children").read_text().split()]
    return found


def _status(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    raise LookupError(f"{field} not in /proc/{pid}/status")


class RelayProcess:
    """The relay as a child process; ``wrap`` prefixes the command (``["strace", ...]``).

    ``config`` None runs it without ``--config``; ``args`` are more ``serve`` flags, ``env``
    more environment variables, ``cwd`` its working directory.
    """

    def __init__(
        self,
        config: Path | None,
        port: int,
        log: Path,
        *,
        wrap: Sequence[str] = (),
        args: Sequence[str] = (),
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
    ) -> None:
        self.config, self.port, self.log, self.wrap = config, port, log, tuple(wrap)
        self.args, self.env, self.cwd = tuple(args), dict(env or {}), cwd
        self.process: subprocess.Popen[bytes] | None = None
        self.kills = 0

    @property
    def pid(self) -> int:
        """The relay's pid (with ``wrap``, the wrapper's)."""
        assert self.process is not None
        return self.process.pid

    def start(self, timeout: float = 20.0) -> None:
        """Start the relay and return once its listener accepts connections."""
        config = ["--config", str(self.config)] if self.config is not None else []
        command = [sys.executable, "-m", "relay", "serve", *config, *self.args]
        env = {**os.environ, **self.env}
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [*self.wrap, *command], stderr=log, stdout=log, env=env, cwd=self.cwd
            )
        if not wait_for_port(self.port, timeout):
            raise AssertionError(f"relay did not start: {self.log.read_text()[-3000:]}")

    def kill(self) -> None:
        """SIGKILL: no clean-up of any kind runs."""
        assert self.process is not None
        os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait()
        self.kills += 1

    def stop(self) -> None:
        """SIGTERM and wait (the orderly stop)."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
