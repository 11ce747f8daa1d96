"""Crash safety: every message answered 250 reaches the upstream, even across kill -9."""

from __future__ import annotations

import collections
import email
import os
import signal
import smtplib
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import yaml
from upstream import FakeUpstream

pytestmark = pytest.mark.slow


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class RelayProcess:
    """``notify-relay serve`` as a child process that can be killed and restarted."""

    def __init__(self, config: Path, port: int, log: Path) -> None:
        self.config, self.port, self.log = config, port, log
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "relay", "serve", "--config", str(self.config)],
                stderr=log,
                stdout=log,
            )
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                time.sleep(0.05)
        raise AssertionError(f"relay did not start: {self.log.read_text()[-2000:]}")

    def kill(self) -> None:
        assert self.process is not None
        os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)


def send_numbered(
    port: int, client: int, count: int, acked: set[str], stop: threading.Event
) -> None:
    """Send ``count`` numbered messages, each retried until it gets 250."""
    for n in range(count):
        seq = f"{client}-{n}"
        message = (
            "From: trac@example.org\r\nTo: dev@example.org\r\n"
            f"X-Seq: {seq}\r\nSubject: {seq}\r\n\r\nbody {seq}\r\n"
        )
        while not stop.is_set():
            try:
                with smtplib.SMTP("127.0.0.1", port, timeout=10) as smtp:
                    smtp.sendmail("trac@example.org", ["dev@example.org"], message)
                acked.add(seq)
                break
            except (OSError, smtplib.SMTPException):
                time.sleep(0.05)


def test_acknowledged_mail_survives_kill_9(tmp_path: Path) -> None:
    clients, per_client, kills = 4, 40, 3
    with FakeUpstream() as upstream:
        port = free_port()
        config = tmp_path / "relay.yaml"
        config.write_text(
            yaml.safe_dump(
                {
                    "listen": [f"127.0.0.1:{port}"],
                    "upstream": {"host": "127.0.0.1", "port": upstream.port, "tls": "none"},
                    "queue": {
                        "path": str(tmp_path / "queue"),
                        "retry": {"min_backoff": 0.2, "max_backoff": 1},
                    },
                }
            )
        )
        relay = RelayProcess(config, port, tmp_path / "relay.log")
        relay.start()
        acked: set[str] = set()
        stop = threading.Event()
        threads = [
            threading.Thread(target=send_numbered, args=(port, c, per_client, acked, stop))
            for c in range(clients)
        ]
        try:
            for thread in threads:
                thread.start()
            for _ in range(kills):
                time.sleep(0.7)
                relay.kill()
                time.sleep(0.2)
                relay.start()
            for thread in threads:
                thread.join(120)
            assert len(acked) == clients * per_client
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                seqs = collections.Counter(
                    email.message_from_bytes(m.content)["X-Seq"] for m in list(upstream.messages)
                )
                if acked <= set(seqs):
                    break
                time.sleep(0.1)
        finally:
            stop.set()
            relay.stop()
        lost = acked - set(seqs)
        duplicates = sum(count - 1 for count in seqs.values())
        print(
            f"\ncrash test: acknowledged={len(acked)} delivered={len(seqs)} "
            f"lost={len(lost)} duplicates={duplicates}"
        )
        assert not lost, f"lost {len(lost)} acknowledged messages: {sorted(lost)[:10]}"
