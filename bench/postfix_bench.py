"""notify-relay against Postfix and a bare aiosmtpd server, measured in one run.

Three servers get the same load, one after the other, and the two relays deliver to the
same sink:

- bare: an aiosmtpd server that answers 250 to everything (bench/sink.py), accept only;
- postfix: a private Postfix instance (its own config and queue directories, not the
  system's) relaying in plain SMTP to the sink (tests/hardening/postfix.py, PostfixRelay);
- relay: ``notify-relay serve`` in relay mode (fsync'd spool) delivering to the sink.

The sink is Postfix's ``smtp-sink`` (C, so it costs the two relays little), the load
generator for throughput is ``smtp-source`` (C), one connection per message as Trac does.
Latency is measured by a small blocking client: end of DATA (the dot) to the 250 reply,
one new connection per message.

Prints, per message size (a ~1.5 KB Trac notification and a ~100 KB one with a base64
attachment) and client count (1 and 20): msgs/s accepted and delivered end to end, p50/p99
accept latency, and the ratios to Postfix; then each server's peak memory (PSS summed over its
process tree). With ``--reps N`` every figure is the median of N runs, with the spread
(min-max) beside it. Numbers, not pass/fail. Needs root and the postfix package (the
test command installs it).

    python bench/postfix_bench.py [--reps 3] [--messages 2000] [--large-messages 500]
    python bench/postfix_bench.py --soak 100000     # notify-relay's memory over a long run
"""

from __future__ import annotations

import argparse
import base64
import random
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

HERE = Path(__file__).resolve().parent
TESTS = HERE.parent / "tests"
sys.path[:0] = [str(TESTS), str(TESTS / "hardening")]

from helpers import free_port, wait_for_port  # noqa: E402
from postfix import PostfixRelay, descendants, why_unavailable  # noqa: E402
from relay_bench import start_relay  # noqa: E402

FIXTURE = TESTS / "fixtures" / "trac" / "new-and-change" / "0002.eml"
SMTP_SINK, SMTP_SOURCE = "/usr/sbin/smtp-sink", "/usr/sbin/smtp-source"
SENDER, RECIPIENT = "trac@example.org", "alice@example.org"


def small_message() -> bytes:
    """The Trac fixture as it is (LF line ends: smtp-source adds the CRs)."""
    return FIXTURE.read_bytes().replace(b"\r\n", b"\n")


def large_message(size: int = 100_000) -> bytes:
    """The Trac fixture's headers and text with a base64 attachment, ``size`` bytes in all."""
    head, _, body = small_message().partition(b"\n\n")
    fields = re.split(rb"\n(?![ \t])", head)  # a folded field stays whole
    head = b"\n".join(
        field
        for field in fields
        if not field.lower().startswith((b"content-type", b"content-transfer", b"mime-version"))
    )
    attachment = base64.encodebytes(random.Random(1).randbytes(size * 3 // 4))[: size - 1500]
    return b"\n".join(
        [
            head,
            b"MIME-Version: 1.0",
            b'Content-Type: multipart/mixed; boundary="==bench=="',
            b"",
            b"--==bench==",
            b"Content-Type: text/plain; charset=utf-8",
            b"",
            body,
            b"--==bench==",
            b"Content-Type: application/octet-stream",
            b"Content-Transfer-Encoding: base64",
            b'Content-Disposition: attachment; filename="trace.bin"',
            b"",
            attachment,
            b"--==bench==--",
            b"",
        ]
    )


class Sink:
    """``smtp-sink -c``: counts messages (read from its running counter on stdout)."""

    def __init__(self) -> None:
        self.port = free_port()
        self.count = 0
        self.process = subprocess.Popen(
            [SMTP_SINK, "-c", "-u", "nobody", f"127.0.0.1:{self.port}", "1024"],
            stdout=subprocess.PIPE,
        )
        threading.Thread(target=self._read, daemon=True).start()
        wait_for_port(self.port)

    def _read(self) -> None:
        assert self.process.stdout is not None
        for chunk in iter(lambda: self.process.stdout.read1(4096), b""):  # type: ignore[union-attr]
            found = re.findall(rb"mesg=(\d+)", chunk)
            if found:
                self.count = int(found[-1])

    def close(self) -> None:
        self.process.terminate()
        self.process.wait()


class Counter:
    """bench/sink.py's own counter (the bare server counts what it accepts)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    @property
    def count(self) -> int:
        try:
            return int(self.path.read_text() or 0)
        except (FileNotFoundError, ValueError):
            return 0


def tree_rss_mib(pids: list[int]) -> float:
    """The memory of the given processes now, in MiB: the sum of their proportional set
    sizes (PSS), so pages that several processes share (libraries, a forked parent's heap)
    count once in all, not once per process."""
    total = 0
    for pid in pids:
        try:
            status = Path(f"/proc/{pid}/smaps_rollup").read_text()
        except OSError:
            continue
        found = re.search(r"^Pss:\s+(\d+)", status, re.M)
        total += int(found.group(1)) if found else 0
    return total / 1024


class PeakRss:
    """Samples a process tree's memory (PSS) every 100 ms; ``peak`` is the largest sum."""

    def __init__(self, pids: Callable[[], list[int]]) -> None:
        self.pids, self.peak, self._stop = pids, 0.0, threading.Event()
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self) -> None:
        while not self._stop.wait(0.1):
            self.peak = max(self.peak, tree_rss_mib(self.pids()))

    def stop(self) -> float:
        self._stop.set()
        return self.peak


@contextmanager
def bare_server(workdir: Path) -> Iterator[tuple[int, Counter, Callable[[], list[int]]]]:
    port, count = free_port(), workdir / "bare.count"
    process = subprocess.Popen([sys.executable, str(HERE / "sink.py"), str(port), str(count)])
    try:
        wait_for_port(port)
        yield port, Counter(count), lambda: [process.pid, *descendants(process.pid)]
    finally:
        process.terminate()
        process.wait()


@contextmanager
def relay_server(
    workdir: Path, sink_port: int, workers: int | None = None
) -> Iterator[tuple[int, Callable[[], list[int]]]]:
    """``notify-relay serve`` in relay mode to the sink, as relay_bench.py starts it."""
    process, port = start_relay(workdir, sink_port, workers)
    try:
        yield port, lambda: [process.pid, *descendants(process.pid)]
    finally:
        process.terminate()
        process.wait()


def smtp_source(port: int, message_file: Path, sessions: int, total: int) -> float:
    """Send ``total`` messages over ``sessions`` parallel sessions; the seconds it took."""
    started = time.perf_counter()
    subprocess.run(
        [
            *(SMTP_SOURCE, "-s", str(sessions), "-m", str(total), "-F", str(message_file)),
            *("-f", SENDER, "-t", RECIPIENT, "-M", "bench.test", f"127.0.0.1:{port}"),
        ],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    return time.perf_counter() - started


def _reply(sock: socket.socket, buffer: bytearray) -> bytes:
    """Read one whole (possibly multi-line) reply."""
    while True:
        lines = buffer.split(b"\r\n")
        for index, line in enumerate(lines[:-1]):
            if len(line) >= 4 and line[3:4] == b" ":
                del buffer[: sum(len(x) + 2 for x in lines[: index + 1])]
                return line
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("server closed the connection")
        buffer += chunk


def accept_latencies(port: int, message: bytes, total: int) -> list[float]:
    """One client, a new connection per message: seconds from the dot to the 250."""
    data = message.replace(b"\n", b"\r\n").replace(b"\r\n.", b"\r\n..")
    latencies = []
    for _ in range(total):
        with socket.create_connection(("127.0.0.1", port)) as sock:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            buffer = bytearray()
            _reply(sock, buffer)
            for command in (b"EHLO bench.test", f"MAIL FROM:<{SENDER}>".encode()):
                sock.sendall(command + b"\r\n")
                _reply(sock, buffer)
            for command in (f"RCPT TO:<{RECIPIENT}>".encode(), b"DATA"):
                sock.sendall(command + b"\r\n")
                _reply(sock, buffer)
            sock.sendall(data)
            started = time.perf_counter()
            sock.sendall(b".\r\n")
            reply = _reply(sock, buffer)
            latencies.append(time.perf_counter() - started)
            if not reply.startswith(b"250"):
                raise SystemExit(f"refused: {reply!r}")
            sock.sendall(b"QUIT\r\n")
            _reply(sock, buffer)
    return latencies


def wait_count(counter: Sink | Counter, expected: int, timeout: float = 600) -> None:
    deadline = time.monotonic() + timeout
    while counter.count < expected:
        if time.monotonic() > deadline:
            raise SystemExit(f"only {counter.count} of {expected} arrived")
        time.sleep(0.005)


def percentile(values: list[float], fraction: float) -> float:
    return statistics.quantiles(values, n=100)[int(fraction * 100) - 1]


def run_case(
    port: int, counter: Sink | Counter, message_file: Path, sessions: int, total: int
) -> dict[str, float]:
    """Throughput with smtp-source, then accept latency with one client."""
    before = counter.count
    started = time.perf_counter()
    accept_seconds = smtp_source(port, message_file, sessions, total)
    wait_count(counter, before + total)
    end_to_end = time.perf_counter() - started
    latencies = accept_latencies(port, message_file.read_bytes(), min(total, 200))
    wait_count(counter, before + total + len(latencies))
    return {
        "accepted/s": total / accept_seconds,
        "delivered/s": total / end_to_end,
        "p50 ms": percentile(latencies, 0.50) * 1000,
        "p99 ms": percentile(latencies, 0.99) * 1000,
    }


COLUMNS = ("accepted/s", "delivered/s", "p50 ms", "p99 ms")


def progress(rep: int, case: str, row: dict[str, float]) -> None:
    """One run's figures on stderr, as they come."""
    figures = ", ".join(f"{name} {value:.1f}" for name, value in row.items())
    print(f"rep {rep + 1}: {case}: {figures}", file=sys.stderr)


def summary(values: list[float]) -> str:
    middle = statistics.median(values)
    if len(values) == 1:
        return f"{middle:9.1f}"
    return f"{middle:9.1f} ({min(values):.1f}-{max(values):.1f})"


def compare(args: argparse.Namespace) -> None:
    files = {"2KB": small_message(), "100KB": large_message()}
    cases = [
        ("2KB", 1, args.single),
        ("2KB", 20, args.messages),
        ("100KB", 1, args.single // 2),
        ("100KB", 20, args.large_messages),
    ]
    results: dict[tuple[str, int, str], list[dict[str, float]]] = {}
    peaks: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="postfix-bench-") as tmp, ExitStack() as stack:
        workdir = Path(tmp)
        for name, data in files.items():
            (workdir / f"{name}.eml").write_bytes(data)
        sink = Sink()
        stack.callback(sink.close)
        bare_port, bare_count, bare_pids = stack.enter_context(bare_server(workdir))
        postfix = stack.enter_context(PostfixRelay(sink.port))
        relay_port, relay_pids = stack.enter_context(relay_server(workdir, sink.port))
        servers = {
            "bare": (bare_port, bare_count, bare_pids),
            "postfix": (postfix.port, sink, postfix.pids),
            "relay": (relay_port, sink, relay_pids),
        }
        if args.one_process:  # the same relay in one process (workers: 0), as a baseline
            one_port, one_pids = stack.enter_context(relay_server(workdir, sink.port, 0))
            servers["1proc"] = (one_port, sink, one_pids)
        for server, (port, counter, _) in servers.items():  # warm up: caches, imports
            run_case(port, counter, workdir / "2KB.eml", 4, 100)
            peaks[server] = 0.0
        for rep in range(args.reps):
            for size, sessions, total in cases:
                for server, (port, counter, pids) in servers.items():
                    sampler = PeakRss(pids)
                    row = run_case(port, counter, workdir / f"{size}.eml", sessions, total)
                    peaks[server] = max(peaks[server], sampler.stop())
                    results.setdefault((size, sessions, server), []).append(row)
                    progress(rep, f"{size:>5} {sessions:>2} sessions {server:>7}", row)
    print(f"median of {args.reps} run(s), spread (min-max) in brackets")
    print(f"{'size':>5} {'sess':>4} {'server':>7} " + " ".join(f"{c:>21}" for c in COLUMNS))
    for size, sessions, _ in cases:
        for server in servers:
            rows = results[(size, sessions, server)]
            cells = " ".join(f"{summary([r[c] for r in rows]):>21}" for c in COLUMNS)
            print(f"{size:>5} {sessions:>4} {server:>7} {cells}")
        relay_rows, postfix_rows = (results[(size, sessions, s)] for s in ("relay", "postfix"))
        ratios = [
            statistics.median(r[c] for r in relay_rows)
            / statistics.median(r[c] for r in postfix_rows)
            for c in COLUMNS
        ]
        print(f"{size:>5} {sessions:>4} {'ratio':>7} " + " ".join(f"{r:>21.2f}" for r in ratios))
    print("ratio: notify-relay / Postfix (throughput: higher is better; latency: lower is)")
    print(
        "peak memory, PSS MiB over the process tree: "
        + ", ".join(f"{s} {v:.1f}" for s, v in peaks.items())
    )
    print(
        "targets: 2KB/20 delivered ratio >= 1.0 (goal 1.5); 100KB/20 >= 0.8 (goal 1.0); "
        "2KB/1 p50 ratio <= 1.5 (goal 1.0)"
    )


def soak(args: argparse.Namespace) -> None:
    """Send ``--soak`` messages in rounds of 5,000; print notify-relay's memory (PSS) after each."""
    with tempfile.TemporaryDirectory(prefix="postfix-bench-") as tmp, ExitStack() as stack:
        workdir = Path(tmp)
        (workdir / "2KB.eml").write_bytes(small_message())
        sink = Sink()
        stack.callback(sink.close)
        port, pids = stack.enter_context(relay_server(workdir, sink.port))
        sent, step = 0, 5000
        while sent < args.soak:
            smtp_source(port, workdir / "2KB.eml", 20, step)
            sent += step
            wait_count(sink, sent)
            print(f"{sent:>7} messages: PSS {tree_rss_mib(pids()):.1f} MiB", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=3, help="runs of every case (median)")
    parser.add_argument("--messages", type=int, default=2000, help="2 KB, 20 sessions")
    parser.add_argument("--large-messages", type=int, default=500, help="100 KB, 20 sessions")
    parser.add_argument("--single", type=int, default=300, help="2 KB, 1 session")
    parser.add_argument("--soak", type=int, default=0, help="only the memory soak, N messages")
    parser.add_argument(
        "--one-process",
        action="store_true",
        help="also run the relay in one process (workers: 0), the model before the split",
    )
    args = parser.parse_args()
    for tool in (SMTP_SINK, SMTP_SOURCE):
        if not Path(tool).exists():
            raise SystemExit(f"{tool} is missing: install Debian's postfix package")
    if args.soak:
        soak(args)
        return
    reason = why_unavailable()
    if reason:
        raise SystemExit(f"cannot start a private Postfix: {reason}")
    compare(args)


if __name__ == "__main__":
    main()
