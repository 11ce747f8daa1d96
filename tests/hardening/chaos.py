"""The crash loop and the fault matrix: numbered mail in, faults injected, everything counted.

Shared by tests/hardening/test_crash_loop.py (small N, in CI) and bench/faults.py (large N,
with a printed table). Each message carries ``X-Seq: <scenario>-<client>-<n>``; a client
retries a message until it gets 250, and a sequence number counts as *acknowledged* once it
did. At the end, *lost* = acknowledged but never seen by the upstream (must be 0) and
*duplicates* = copies the upstream took beyond the first.
"""

from __future__ import annotations

import collections
import contextlib
import itertools
import os
import random
import smtplib
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from helpers import free_port

from .misbehave import DROP, RECORD_THEN_DROP, Upstream
from .processes import RelayProcess, write_config
from .wire import code

__all__ = ["Tally", "format_table", "run_bad_inputs", "run_crash_loop", "run_fault_matrix"]


@dataclass
class Tally:
    """What one scenario sent, broke and got back."""

    name: str
    sent: int = 0  # distinct messages offered
    submissions: int = 0  # SMTP transactions tried (retries included)
    faults: int = 0  # kills plus upstream misbehaviours
    bad_inputs: int = 0
    acknowledged: int = 0
    delivered: int = 0  # acknowledged messages the upstream has
    lost: int = 0
    duplicates: int = 0
    unexpected: int = 0  # deliveries that must not exist (bad inputs that got through)
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)

    def count(self, acked: set[str], seen: collections.Counter[str]) -> None:
        self.acknowledged = len(acked)
        self.delivered = len(acked & set(seen))
        self.lost = len(acked - set(seen))
        self.duplicates = sum(count - 1 for seq, count in seen.items() if count > 1)


COLUMNS = (
    ("scenario", "name"),
    ("load sent", "sent"),
    ("SMTP tries", "submissions"),
    ("faults injected", "faults"),
    ("bad inputs tried", "bad_inputs"),
    ("acknowledged", "acknowledged"),
    ("delivered", "delivered"),
    ("lost", "lost"),
    ("duplicates", "duplicates"),
    ("unexpected", "unexpected"),
    ("seconds", "seconds"),
)


def format_table(tallies: list[Tally]) -> str:
    """The tallies as a Markdown table with a total row (``unexpected``: bad inputs that
    were delivered; must be 0 like ``lost``)."""
    total = Tally("total")
    for tally in tallies:
        for _, attribute in COLUMNS[1:]:
            setattr(total, attribute, getattr(total, attribute) + getattr(tally, attribute))
    cells = [
        [_cell(getattr(tally, attribute)) for _, attribute in COLUMNS]
        for tally in [*tallies, total]
    ]
    widths = [
        max(len(title), *(len(row[n]) for row in cells)) for n, (title, _) in enumerate(COLUMNS)
    ]

    def line(values: list[str]) -> str:
        padded = [
            value.rjust(width) if n else value.ljust(width)
            for n, (value, width) in enumerate(zip(values, widths, strict=True))
        ]
        return "| " + " | ".join(padded) + " |"

    rule = (
        "|"
        + "|".join("-" * (width + 1) + (":" if n else "-") for n, width in enumerate(widths))
        + "|"
    )
    return "\n".join([line([title for title, _ in COLUMNS]), rule, *map(line, cells)])


def _cell(value: object) -> str:
    return f"{value:.1f}" if isinstance(value, float) else str(value)


def numbered(seq: str) -> bytes:
    return (
        f"From: trac@example.org\r\nTo: dev@example.org\r\nX-Seq: {seq}\r\n"
        f"Subject: [trac] #{seq}\r\n\r\nticket {seq} changed\r\n"
    ).encode()


def send_until_acknowledged(
    port: int,
    seqs: list[str],
    acked: set[str],
    tally: Tally,
    stop: threading.Event,
    pace: float = 0.0,
) -> None:
    """Submit each message, retrying until it gets 250 (as a patient Trac would), with
    ``pace`` seconds between messages."""
    for seq in seqs:
        time.sleep(pace)
        while not stop.is_set():
            tally.submissions += 1
            try:
                with smtplib.SMTP("127.0.0.1", port, timeout=10) as smtp:
                    smtp.sendmail("trac@example.org", ["dev@example.org"], numbered(seq))
                acked.add(seq)
                break
            except (OSError, smtplib.SMTPException):
                time.sleep(0.05)


def wait_until_delivered(
    upstream: Upstream, acked: set[str], prefix: str, queue: Path, timeout: float
) -> collections.Counter[str]:
    """Wait for every acknowledged sequence number upstream and for the relay's queue to
    be empty (late duplicates arrive with retries); return the copies seen."""
    deadline = time.monotonic() + timeout
    idle = 0
    while time.monotonic() < deadline:
        seen = collections.Counter(s for s in upstream.sequences() if s.startswith(prefix))
        waiting = [name for state in ("incoming", "deferred") for name in _listing(queue / state)]
        idle = idle + 1 if acked <= set(seen) and not waiting else 0
        if idle >= 3:
            break
        time.sleep(0.1)
    return collections.Counter(s for s in upstream.sequences() if s.startswith(prefix))


def _listing(path: Path) -> list[str]:
    """The queue files in ``path`` (an empty one is a reservation, no message)."""
    try:
        entries = list(os.scandir(path))
    except FileNotFoundError:
        return []
    names = []
    for entry in entries:
        with contextlib.suppress(FileNotFoundError):  # delivered meanwhile
            if entry.stat().st_size:
                names.append(entry.name)
    return names


@contextmanager
def relay_process(
    workdir: Path, upstream: Upstream, *, limits: dict[str, Any] | None = None, **upstream_keys: Any
) -> Iterator[RelayProcess]:
    """The relay as a child process delivering to ``upstream``; stopped at the end."""
    port = free_port()
    config = write_config(
        workdir / "relay.yaml",
        listen=[f"127.0.0.1:{port}"],
        limits=limits or {},
        upstream={"host": "127.0.0.1", "port": upstream.port, "tls": "none", **upstream_keys},
        queue={
            "path": str(workdir / "queue"),
            "retry": {"min_backoff": 0.2, "max_backoff": 1, "jitter": 0.1},
        },
    )
    relay = RelayProcess(config, port, workdir / "relay.log")
    relay.start()
    try:
        yield relay
    finally:
        relay.stop()


def chaotic(rate: float, rng: random.Random, tally: Tally) -> Callable[[Any], str | None]:
    """A ``data_reply`` that misbehaves for about ``rate`` of the messages: 421, 451, or
    taking the message and dropping the connection before the reply (a duplicate)."""
    lock = threading.Lock()

    def reply(envelope: Any) -> str | None:
        with lock:
            if rng.random() >= rate:
                return None
            tally.faults += 1
            return rng.choice(["421 4.3.2 shutting down", "451 4.3.0 try again", RECORD_THEN_DROP])

    return reply


def run_crash_loop(
    workdir: Path,
    *,
    clients: int = 4,
    per_client: int = 50,
    kills: int = 10,
    fault_rate: float = 0.1,
    pace: float = 0.1,
    seed: int = 7,
    drain_timeout: float = 40.0,
) -> Tally:
    """Submit numbered mail from ``clients`` threads (``pace`` seconds apart) while the relay
    is SIGKILLed ``kills`` times at random moments, 0.2-0.8 s apart, and the upstream
    misbehaves for ``fault_rate`` of the messages.
    """
    rng = random.Random(seed)
    tally = Tally("crash loop (kill -9)")
    started = time.monotonic()
    acked: set[str] = set()
    stop = threading.Event()
    with Upstream() as upstream:
        upstream.data_reply = chaotic(fault_rate, rng, tally)
        with relay_process(workdir, upstream, connections=2, timeout=5) as relay:
            batches = [[f"crash-{c}-{n}" for n in range(per_client)] for c in range(clients)]
            tally.sent = clients * per_client
            threads = [
                threading.Thread(
                    target=send_until_acknowledged,
                    args=(relay.port, seqs, acked, tally, stop, pace),
                )
                for seqs in batches
            ]
            for thread in threads:
                thread.start()
            try:
                while relay.kills < kills:
                    time.sleep(rng.uniform(0.2, 0.8))
                    relay.kill()
                    time.sleep(rng.uniform(0.0, 0.2))
                    relay.start()
                for thread in threads:
                    thread.join(60)
                seen = wait_until_delivered(
                    upstream, acked, "crash-", workdir / "queue", drain_timeout
                )
            finally:
                stop.set()
            tally.faults += relay.kills
            tally.notes.append(f"{relay.kills} SIGKILLs")
    tally.count(acked, seen)
    tally.seconds = time.monotonic() - started
    return tally


def every_other(reply: str) -> Callable[[Any], str | None]:
    """Misbehave on every second call (so every message sees it and still gets through)."""
    calls = itertools.count()
    return lambda _: reply if next(calls) % 2 == 0 else None


#: scenario -> (attributes to set on the upstream, relay upstream config keys)
MATRIX: dict[str, Callable[[], dict[str, Any]]] = {
    "451 to MAIL": lambda: {"mail_reply": every_other("451 4.3.0 try again")},
    "450 to RCPT": lambda: {"rcpt_reply": every_other("450 4.2.1 busy")},
    "drop at RCPT": lambda: {"rcpt_reply": every_other(DROP)},
    "451 after the dot": lambda: {"data_reply": every_other("451 4.3.0 queue full")},
    "421 after the dot": lambda: {"data_reply": every_other("421 4.7.0 closing")},
    "drop after the dot": lambda: {"data_reply": every_other(DROP)},
    "reply lost after the dot": lambda: {"data_reply": every_other(RECORD_THEN_DROP)},
    # 4 s > timeout (3 s) but < data_timeout (10 s): waited for, never resent
    "slow reply to the dot": lambda: {
        "final_dot_delay": itertools.cycle([4.0, 0.0, 0.0, 0.0, 0.0]).__next__
    },
}
_COUNTED = ("mail_reply", "rcpt_reply", "data_reply")


def _counting(function: Callable[[Any], str | None], tally: Tally) -> Callable[[Any], str | None]:
    def wrapped(argument: Any) -> str | None:
        reply = function(argument)
        if reply is not None:
            tally.faults += 1
        return reply

    return wrapped


def run_fault_matrix(workdir: Path, *, per_scenario: int = 20) -> list[Tally]:
    """Each upstream misbehaviour of :data:`MATRIX` in turn, ``per_scenario`` messages each."""
    tallies = []
    keys = {"connections": 1, "timeout": 3, "data_timeout": 10}
    with Upstream() as upstream, relay_process(workdir, upstream, **keys) as relay:
        for number, (name, setup) in enumerate(MATRIX.items()):
            tally = Tally(name)
            started = time.monotonic()
            prefix = f"matrix{number}-"
            for attribute, value in setup().items():
                if attribute in _COUNTED:
                    value = _counting(value, tally)
                elif attribute == "final_dot_delay":
                    tally.faults = (per_scenario + 4) // 5
                setattr(upstream, attribute, value)
            acked: set[str] = set()
            seqs = [f"{prefix}{n}" for n in range(per_scenario)]
            tally.sent = per_scenario
            send_until_acknowledged(relay.port, seqs, acked, tally, threading.Event())
            seen = wait_until_delivered(upstream, acked, prefix, workdir / "queue", 30)
            tally.count(acked, seen)
            for attribute in (*_COUNTED, "final_dot_delay"):
                setattr(upstream, attribute, None)
            tally.seconds = time.monotonic() - started
            tallies.append(tally)
    return tallies


_ENVELOPE = b"EHLO x\r\nMAIL FROM:<a@example.org>\r\n"
#: Inputs that must never produce a delivery: what is sent after the greeting.
BAD_INPUTS: dict[str, bytes] = {
    **{
        f"smuggle {name}": b"EHLO x\r\nMAIL FROM:<trac@example.org>\r\nRCPT TO:<dev@example.org>"
        b"\r\nDATA\r\nSubject: smuggle\r\n\r\nhello" + end + b"MAIL FROM:<evil@attacker.test>\r\n"
        b"RCPT TO:<victim@attacker.test>\r\nDATA\r\nSubject: evil\r\n\r\nevil\r\n.\r\n"
        for name, end in {
            "LF.CRLF": b"\n.\r\n",
            "LF.LF": b"\n.\n",
            "CR.CR": b"\r.\r",
            "CR.LF": b"\r.\n",
            "LF.CR": b"\n.\r",
            "CRLF.LF": b"\r\n.\n",
            "CR.CRLF": b"\r.\r\n",
            "CRLF.CR": b"\r\n.\r",
        }.items()
    },
    "NUL in address": _ENVELOPE + b"RCPT TO:<victim\x00@attacker.test>\r\n",
    "CR in address": _ENVELOPE + b"RCPT TO:<v@attacker.test\rX>\r\n",
    "undecodable address": _ENVELOPE + b"RCPT TO:<\xff@attacker.test>\r\n",
    "two addresses": _ENVELOPE + b"RCPT TO:<a@e.org,victim@attacker.test>\r\n",
    "over-long line": b"EHLO x\r\nMAIL FROM:<a@example.org>\r\nRCPT TO:<victim@attacker.test>"
    b"\r\nDATA\r\nSubject: long\r\n\r\n" + b"x" * 1200 + b"\r\n.\r\n",
    "over the size limit": b"EHLO x\r\nMAIL FROM:<a@example.org>\r\nRCPT TO:<victim@attacker.test>"
    b"\r\nDATA\r\nSubject: big\r\n\r\n" + (b"y" * 76 + b"\r\n") * 14_000 + b".\r\n",
    "declared size": b"EHLO x\r\nMAIL FROM:<a@example.org> SIZE=999999999\r\n"
    b"RCPT TO:<victim@attacker.test>\r\n",
    "unknown commands": b"".join(b"EVIL%d\r\n" % n for n in range(6)),
    "HTTP request": b"GET / HTTP/1.1\r\nHost: victim@attacker.test\r\n\r\n",
}


def run_bad_inputs(workdir: Path) -> Tally:
    """Send every :data:`BAD_INPUTS` entry; none may lead to a delivery to attacker.test."""
    tally = Tally("bad inputs at the listener")
    started = time.monotonic()
    limits = {"max_message_size": 2**20}  # "over the size limit" sends about 1.1 MB
    with Upstream() as upstream, relay_process(workdir, upstream, limits=limits) as relay:
        for data in BAD_INPUTS.values():
            tally.bad_inputs += 1
            with socket.create_connection(("127.0.0.1", relay.port), timeout=10) as sock:
                assert code(sock.recv(1024)) == 220
                sock.sendall(data + b"QUIT\r\n")
                while sock.recv(65536):
                    pass
        acked: set[str] = set()
        send_until_acknowledged(relay.port, ["bad-barrier"], acked, tally, threading.Event())
        tally.sent = 1
        seen = wait_until_delivered(upstream, acked, "bad-", workdir / "queue", 20)
        tally.count(acked, seen)
        tally.unexpected = sum(
            1
            for message in upstream.messages
            if b"attacker.test" in message.content
            or any("attacker" in rcpt for rcpt in message.recipients)
        )
    tally.seconds = time.monotonic() - started
    return tally
