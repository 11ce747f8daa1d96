"""Capture inspection at scale: numbers, not pass/fail.

For 10,000 and 100,000 generated Trac notifications (tests/tracmail.py) in a capture
Maildir: the index rebuild time (``mail reindex``), then against a real ``notify-relay
serve``, the latency of the page and of ``GET /api/v1/messages`` for listing and for
searches (p50/p95/max over --rounds requests each), and the serve process's RSS.
Target: search p95 under 200 ms at 100,000 messages.

    python bench/capture_bench.py [--sizes 10000 100000] [--rounds 30]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

import tracmail
from hardening.processes import memory_kib
from served import Served

from relay.capture.maildir import CaptureStore

ALICE = "alice@example.org"
#: (label, query, as): listing, the index-only searches, and ones the evaluator finishes.
QUERIES = [
    ("list, newest 50", "", None),
    ("list, page at offset 5000", "", None),
    ("word", "frobnicator", None),
    ("phrase", '"cache directory"', None),
    ("from: (every message)", "from:trac", None),
    ("to: address", "to:bob@example.org", None),
    ("subject: ticket", 'subject:"#42:"', None),
    ("word -word", "dave -bob", None),
    ("negated field", "-from:trac", None),
    ("@domain (subdomains)", "from:@example.org", None),
    ("has:attachment", "has:attachment", None),
    ("newer_than:1d", "newer_than:1d", None),
    ("as alice: label is: -in:", "label:trac is:starred -in:trash", ALICE),
    ("as alice: to:me", "to:me", ALICE),
    ("has:youtube (evaluator)", "has:youtube", None),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--rounds", type=int, default=30)
    args = parser.parse_args()
    for size in args.sizes:
        with tempfile.TemporaryDirectory(prefix="capture-bench-") as directory:
            run(Path(directory), size, args.rounds)


def run(directory: Path, size: int, rounds: int) -> None:
    print(f"\n== {size:,} messages ==")
    started = time.monotonic()
    tracmail.fill(directory / "mail", size)
    print(f"generated in {time.monotonic() - started:.1f} s")
    store = CaptureStore(directory / "mail")
    workers = os.cpu_count() or 1
    started = time.monotonic()
    store.reindex(workers=workers)
    rebuild = time.monotonic() - started
    store.close()
    index_size = (directory / "mail" / "index.sqlite3").stat().st_size
    print(f"index rebuild ({workers} processes): {rebuild:.1f} s, {index_size / 1e6:.0f} MB")
    with Served(directory, capture={"path": "mail", "max_messages": 0}) as served:
        asyncio.run(measure(served, rounds))
        rss, peak = (memory_kib(served.process.pid, field) for field in ("VmRSS", "VmHWM"))
        print(f"serve RSS after the requests: {rss / 1024:.0f} MiB (peak {peak / 1024:.0f} MiB)")


async def measure(served: Served, rounds: int) -> None:
    print(f"{'request':<34} {'total':>8} {'p50 ms':>8} {'p95 ms':>8} {'max ms':>8}")
    async with aiohttp.ClientSession(served.url) as http:
        for path in ("/", "/static/app.js"):
            times = [await _timed(http, path, {}) for _ in range(rounds)]
            _row(f"page {path}", "", [t for t, _ in times])
        for label, query, recipient in QUERIES:
            params = {"q": query, "limit": "50"}
            if recipient:
                params["as"] = recipient
            if "offset" in label:
                params["offset"] = "5000"
            await _timed(http, "/api/v1/messages", params)  # warm the page cache once
            times = [await _timed(http, "/api/v1/messages", params) for _ in range(rounds)]
            total = times[-1][1]
            _row(
                label,
                f"{total['total']}{'' if total['total_exact'] else '?'}",
                [t for t, _ in times],
            )


async def _timed(
    http: aiohttp.ClientSession, path: str, params: dict[str, str]
) -> tuple[float, dict]:
    started = time.perf_counter()
    async with http.get(path, params=params) as response:
        body = await response.read()
        assert response.status == 200, body[:200]
    elapsed = time.perf_counter() - started
    if response.content_type == "application/json":
        return elapsed, json.loads(body)
    return elapsed, {}


def _row(label: str, total: str, seconds: list[float]) -> None:
    ms = sorted(1000 * s for s in seconds)
    p95 = ms[min(len(ms) - 1, round(0.95 * (len(ms) - 1)))]
    print(f"{label:<34} {total:>8} {statistics.median(ms):8.1f} {p95:8.1f} {ms[-1]:8.1f}")


if __name__ == "__main__":
    main()
