"""``notify-relay serve`` runs on uvloop where it is installed, else on asyncio's own loop,
and its log says which (relay/eventloop.py)."""

from __future__ import annotations

import os
import smtplib

from hardening.conftest import relay_process  # noqa: F401 (the fixture)
from hardening.processes import RelayProcess


def served_one(relay: RelayProcess) -> None:
    with smtplib.SMTP("127.0.0.1", relay.port, timeout=10) as client:
        client.sendmail("trac@example.org", ["dev@example.org"], b"Subject: x\r\n\r\nhi\r\n")


def test_serve_runs_on_uvloop_and_says_so(relay_process):  # noqa: F811
    relay = relay_process()
    served_one(relay)
    assert "event loop: uvloop " in relay.log.read_text()


def test_serve_falls_back_to_asyncio_without_uvloop(relay_process, tmp_path, monkeypatch):  # noqa: F811
    blocker = tmp_path / "no-uvloop"
    (blocker / "uvloop").mkdir(parents=True)
    (blocker / "uvloop" / "__init__.py").write_text('raise ImportError("not here")\n')
    path = os.environ.get("PYTHONPATH", "")
    monkeypatch.setenv("PYTHONPATH", f"{blocker}{os.pathsep}{path}")
    relay = relay_process()
    served_one(relay)
    assert "event loop: asyncio (uvloop cannot be imported)" in relay.log.read_text()
