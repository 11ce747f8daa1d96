"""The process table of a split relay: which processes run, and how often each restarted.

The supervisor (:mod:`relay.supervisor`) writes it to ``run/processes.json`` in the queue
directory whenever a process starts or ends; the delivery process reads it for ``/metrics``
and ``/readyz``. Every process keeps its counters in a directory the supervisor makes in
memory (prometheus_client's multiprocess files), so ``/metrics`` adds up all of them, those
of processes that ended too.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from relay.durable import write_private

__all__ = ["TABLE", "ProcessCollector", "ProcessState", "read_table", "receiving"]

#: The process table, under the run directory.
TABLE = "processes.json"


@dataclass(frozen=True, slots=True)
class ProcessState:
    """One process slot: its role and number, its pid (0: not running) and its restarts."""

    role: str
    slot: int
    pid: int
    restarts: int

    @property
    def name(self) -> str:
        """How the log names it: ``receive.1``, ``deliver.0``."""
        return f"{self.role}.{self.slot}"


def write_table(path: Path, states: Sequence[ProcessState]) -> None:
    """Replace the table at ``path`` (owner-only; a reader sees the old or the new one)."""
    scratch = path.with_name(f".{path.name}.new")
    write_private(scratch, json.dumps([asdict(state) for state in states]).encode())
    os.replace(scratch, path)


def read_table(path: Path) -> list[ProcessState]:
    """The table at ``path``; empty when it is missing or unreadable."""
    try:
        return [ProcessState(**item) for item in json.loads(path.read_bytes())]
    except (OSError, ValueError, TypeError):
        return []


def receiving(path: Path) -> bool:
    """Whether the table at ``path`` has a receive worker running."""
    return any(state.role == "receive" and state.pid for state in read_table(path))


class ProcessCollector(Collector):
    """``notify_relay_processes{role}`` and ``notify_relay_process_restarts_total{role}``
    from the table, at scrape time."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def collect(self) -> Iterator[Metric]:
        """The two metrics, one sample per role."""
        running = GaugeMetricFamily(
            "notify_relay_processes", "Processes running, per role.", labels=["role"]
        )
        restarts = CounterMetricFamily(
            "notify_relay_process_restarts",
            "Times the supervisor restarted a process that ended, per role.",
            labels=["role"],
        )
        roles: dict[str, list[ProcessState]] = {}
        for state in read_table(self.path):
            roles.setdefault(state.role, []).append(state)
        for role, states in sorted(roles.items()):
            running.add_metric([role], sum(1 for state in states if state.pid))
            restarts.add_metric([role], sum(state.restarts for state in states))
        yield running
        yield restarts
