"""Capture-mode intake: how fast ``notify-relay serve`` in capture mode answers 250, and
how soon the index holds what it accepted.

Per message size (the ~1.5 KB Trac notification and a ~100 KB one with a base64
attachment, as bench/postfix_bench.py builds them) and session count (1 and 20), against a
fresh ``serve`` with an empty Maildir each time:

- accepted/s: ``smtp-source`` (Postfix's C load generator, one connection per message)
  sends N messages over that many sessions; N over the seconds until the last 250;
- indexed/s: N over the seconds until the index holds all N (read from ``index.sqlite3``);
- p50/p99 ms: end of DATA (the dot) to the 250, from a blocking client sending 200 more
  messages one connection each while ``smtp-source`` keeps the other sessions busy.

With ``--reps N`` every figure is the median of N runs, the spread (min-max) beside it.
The server runs the ``relay`` package Python finds, so ``PYTHONPATH`` picks the code under
test (e.g. a checkout of main for the figures before a change). Numbers, not pass/fail.
Needs smtp-source (Debian's postfix package).

    python bench/capture_intake_bench.py [--reps 3] [--messages 2000] [--large-messages 500]
"""

from __future__ import annotations

import argparse
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent / "tests")]

from hardening.processes import RelayProcess  # noqa: E402
from helpers import free_port  # noqa: E402
from postfix_bench import (  # noqa: E402
    RECIPIENT,
    SENDER,
    SMTP_SOURCE,
    accept_latencies,
    large_message,
    percentile,
    progress,
    small_message,
    summary,
)

PROBES = 200
COLUMNS = ("accepted/s", "indexed/s", "p50 ms", "p99 ms")


@contextmanager
def capture_server(workdir: Path) -> Iterator[tuple[int, Path]]:
    """A fresh ``notify-relay serve`` in capture mode; its port and Maildir."""
    port, mail = free_port(), workdir / "mail"
    config = workdir / "relay.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "listen": [f"127.0.0.1:{port}"],
                "capture": {"path": str(mail), "max_messages": 0},
                "queue": {"path": str(workdir / "queue")},
                "web": {"enabled": False},
            }
        )
    )
    process = RelayProcess(config, port, workdir / "relay.log")
    process.start()
    try:
        yield port, mail
    finally:
        process.stop()


def wait_indexed(mail: Path, expected: int, timeout: float = 600) -> None:
    """Return once the index holds ``expected`` messages (one reading connection, polled)."""
    deadline, uri = time.monotonic() + timeout, f"file:{mail / 'index.sqlite3'}?mode=ro"
    db: sqlite3.Connection | None = None
    try:
        while time.monotonic() < deadline:
            try:
                db = db or sqlite3.connect(uri, uri=True, timeout=10)
                if db.execute("SELECT count(*) FROM messages").fetchone()[0] >= expected:
                    return
            except sqlite3.Error:  # not created yet
                pass
            time.sleep(0.005)
    finally:
        if db is not None:
            db.close()
    raise SystemExit(f"the index does not hold {expected} messages in time")


def source(port: int, message_file: Path, sessions: int, total: int) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [
            *(SMTP_SOURCE, "-s", str(sessions), "-m", str(total), "-F", str(message_file)),
            *("-f", SENDER, "-t", RECIPIENT, "-M", "bench.test", f"127.0.0.1:{port}"),
        ],
        stdout=subprocess.DEVNULL,
    )


def run_case(workdir: Path, message_file: Path, sessions: int, total: int) -> dict[str, float]:
    """Throughput and indexing on a fresh server, then latency under the same concurrency."""
    with capture_server(workdir) as (port, mail):
        wait_indexed(mail, 0)
        started = time.perf_counter()
        load = source(port, message_file, sessions, total)
        if load.wait() != 0:
            raise SystemExit("smtp-source failed")
        accepted = time.perf_counter() - started
        wait_indexed(mail, total)
        indexed_in = time.perf_counter() - started
        others = source(port, message_file, sessions - 1, total) if sessions > 1 else None
        latencies = accept_latencies(port, message_file.read_bytes(), PROBES)
        if others is not None:
            others.wait()
    return {
        "accepted/s": total / accepted,
        "indexed/s": total / indexed_in,
        "p50 ms": percentile(latencies, 0.50) * 1000,
        "p99 ms": percentile(latencies, 0.99) * 1000,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reps", type=int, default=3, help="runs of every case (median)")
    parser.add_argument("--messages", type=int, default=2000, help="2 KB messages per case")
    parser.add_argument("--large-messages", type=int, default=500, help="100 KB per case")
    args = parser.parse_args()
    if not Path(SMTP_SOURCE).exists():
        raise SystemExit(f"{SMTP_SOURCE} is missing: install Debian's postfix package")
    cases = [(size, sessions) for size in ("2KB", "100KB") for sessions in (1, 20)]
    counts = {"2KB": args.messages, "100KB": args.large_messages}
    results: dict[tuple[str, int], list[dict[str, float]]] = {}
    with tempfile.TemporaryDirectory(prefix="capture-intake-") as tmp:
        workdir = Path(tmp)
        for name, data in (("2KB", small_message()), ("100KB", large_message())):
            (workdir / f"{name}.eml").write_bytes(data)
        for rep in range(args.reps):
            for size, sessions in cases:
                with tempfile.TemporaryDirectory(dir=workdir) as run:
                    row = run_case(Path(run), workdir / f"{size}.eml", sessions, counts[size])
                results.setdefault((size, sessions), []).append(row)
                progress(rep, f"{size:>5} {sessions:>2} sessions", row)
    print(f"median of {args.reps} run(s), spread (min-max) in brackets")
    print(f"{'size':>5} {'sess':>4} " + " ".join(f"{c:>21}" for c in COLUMNS))
    for size, sessions in cases:
        rows = results[(size, sessions)]
        cells = " ".join(f"{summary([r[c] for r in rows]):>21}" for c in COLUMNS)
        print(f"{size:>5} {sessions:>4} {cells}")


if __name__ == "__main__":
    main()
