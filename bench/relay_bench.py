"""Relay throughput and latency against a bare aiosmtpd server, measured in one run.

(a) bare: an aiosmtpd server answering 250 to everything (bench/sink.py);
(b) relay: ``notify-relay serve`` in relay mode (fsync'd spool) delivering to the same kind
    of sink. Both get the same ~2 KB Trac notification from 1 and from 20 concurrent
    clients, one SMTP connection per message as Trac does.

Prints msgs/s accepted, msgs/s delivered end to end, p50/p99 accept latency (end of DATA to
the 250), the relay's peak RSS, and the ratios of (b) to (a). Numbers, not pass/fail.

    python bench/relay_bench.py [--messages 2000] [--single 300]
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiosmtplib
import yaml

HERE = Path(__file__).resolve().parent
FIXTURE = HERE.parent / "tests" / "fixtures" / "trac" / "new-and-change" / "0002.eml"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_port(port: int, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"nothing listens on {port}")


def start_sink(workdir: Path, name: str) -> tuple[subprocess.Popen[bytes], int, Path]:
    port, count_file = free_port(), workdir / f"{name}.count"
    process = subprocess.Popen([sys.executable, str(HERE / "sink.py"), str(port), str(count_file)])
    wait_for_port(port)
    return process, port, count_file


def read_count(count_file: Path) -> int:
    try:
        return int(count_file.read_text() or 0)
    except (FileNotFoundError, ValueError):
        return 0


def peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


async def load(port: int, message: bytes, clients: int, total: int) -> tuple[float, list[float]]:
    """Send ``total`` messages from ``clients`` concurrent senders; return (seconds, latencies)."""
    latencies: list[float] = []
    remaining = iter(range(total))

    async def client() -> None:
        for _ in remaining:
            smtp = aiosmtplib.SMTP(hostname="127.0.0.1", port=port, local_hostname="bench")
            await smtp.connect()
            await smtp.mail("trac@example.org")
            await smtp.rcpt("alice@example.org")
            started = time.perf_counter()
            await smtp.data(message)
            latencies.append(time.perf_counter() - started)
            await smtp.quit()

    started = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(clients)))
    return time.perf_counter() - started, latencies


async def wait_delivered(
    count_file: Path, expected: int, since: float, timeout: float = 300
) -> float:
    while read_count(count_file) < expected:
        if time.perf_counter() - since > timeout:
            raise SystemExit(f"only {read_count(count_file)} of {expected} delivered")
        await asyncio.sleep(0.01)
    return time.perf_counter() - since


def percentile(values: list[float], fraction: float) -> float:
    return (
        statistics.quantiles(values, n=100)[int(fraction * 100) - 1]
        if len(values) > 1
        else values[0]
    )


async def measure(
    name: str, port: int, count_file: Path, clients: int, total: int
) -> dict[str, float]:
    message = FIXTURE.read_bytes()
    before = read_count(count_file)
    started = time.perf_counter()
    seconds, latencies = await load(port, message, clients, total)
    delivered = await wait_delivered(count_file, before + total, started)
    return {
        "accepted/s": total / seconds,
        "delivered/s": total / delivered,
        "p50 ms": percentile(latencies, 0.50) * 1000,
        "p99 ms": percentile(latencies, 0.99) * 1000,
    }


def start_relay(
    workdir: Path, sink_port: int, workers: int | None = None
) -> tuple[subprocess.Popen[bytes], int]:
    """``serve`` in relay mode to the sink (``workers``: the config key; None: its default)."""
    port = free_port()
    name = "relay" if workers is None else f"relay-{workers}"
    config = workdir / f"{name}.yaml"
    settings = {
        "listen": [f"127.0.0.1:{port}"],
        "upstream": {"host": "127.0.0.1", "port": sink_port, "tls": "none"},
        "queue": {"path": str(workdir / f"{name}-queue")},
        **({} if workers is None else {"workers": workers}),
    }
    config.write_text(yaml.safe_dump(settings))
    log = (workdir / f"{name}.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "relay", "serve", "--config", str(config)], stderr=log, stdout=log
    )
    wait_for_port(port)
    return process, port


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--messages", type=int, default=2000, help="messages for the 20-client runs"
    )
    parser.add_argument("--single", type=int, default=300, help="messages for the 1-client runs")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=HERE) as tmp:
        workdir = Path(tmp)
        bare, bare_port, bare_count = start_sink(workdir, "bare")
        sink, sink_port, sink_count = start_sink(workdir, "sink")
        relay, relay_port = start_relay(workdir, sink_port)
        try:
            rows = []
            for clients, total in ((1, args.single), (20, args.messages)):
                a = await measure("bare", bare_port, bare_count, clients, total)
                b = await measure("relay", relay_port, sink_count, clients, total)
                rows.append((clients, a, b))
            rss = peak_rss_mib(relay.pid)
        finally:
            for process in (relay, sink, bare):
                process.terminate()
                process.wait()
    print(f"message: {FIXTURE.relative_to(HERE.parent)} ({FIXTURE.stat().st_size} bytes)")
    header = ("clients", "server", "accepted/s", "delivered/s", "p50 ms", "p99 ms")
    print(
        " ".join(
            f"{name:>{width}}" for name, width in zip(header, (7, 6, 11, 12, 7, 7), strict=True)
        )
    )
    for clients, a, b in rows:
        for name, row in (("bare", a), ("relay", b)):
            print(
                f"{clients:>7} {name:>6} {row['accepted/s']:>11.0f} {row['delivered/s']:>12.0f} "
                f"{row['p50 ms']:>7.2f} {row['p99 ms']:>7.2f}"
            )
        print(
            f"{clients:>7} {'ratio':>6} {b['accepted/s'] / a['accepted/s']:>11.2f} "
            f"{b['delivered/s'] / a['delivered/s']:>12.2f}"
        )
    print(f"relay peak RSS: {rss:.1f} MiB")
    print(
        "targets: accept ratio at 20 clients >= 0.50, end-to-end >= 0.45, p99 with 1 client <= 5 ms"
    )


if __name__ == "__main__":
    asyncio.run(main())
