"""``notify-relay serve`` runs on uvloop where it is installed, else on asyncio's own loop,
and its log says which (relay/eventloop.py)."""

from __future__ import annotations

import os
import smtplib

import pytest
from hardening.processes import RelayProcess, write_config
from helpers import free_port


@pytest.fixture
def serve(tmp_path):
    """Start ``serve`` in capture mode as a child process; return it (stopped at the end)."""
    started: list[RelayProcess] = []

    def start() -> RelayProcess:
        port = free_port()
        config = write_config(
            tmp_path / "relay.yaml", listen=[f"127.0.0.1:{port}"], capture={"path": "mail"}
        )
        relay = RelayProcess(config, port, tmp_path / "relay.log")
        relay.start()
        started.append(relay)
        return relay

    yield start
    for relay in started:
        relay.stop()


def served_one(relay: RelayProcess) -> None:
    with smtplib.SMTP("127.0.0.1", relay.port, timeout=10) as client:
        client.sendmail("trac@example.org", ["dev@example.org"], b"Subject: x\r\n\r\nhi\r\n")


def test_serve_runs_on_uvloop_and_says_so(serve):
    relay = serve()
    served_one(relay)
    assert "event loop: uvloop " in relay.log.read_text()


def test_serve_falls_back_to_asyncio_without_uvloop(serve, tmp_path, monkeypatch):
    blocker = tmp_path / "no-uvloop"
    (blocker / "uvloop").mkdir(parents=True)
    (blocker / "uvloop" / "__init__.py").write_text('raise ImportError("not here")\n')
    path = os.environ.get("PYTHONPATH", "")
    monkeypatch.setenv("PYTHONPATH", f"{blocker}{os.pathsep}{path}")
    relay = serve()
    served_one(relay)
    assert "event loop: asyncio (uvloop cannot be imported)" in relay.log.read_text()
