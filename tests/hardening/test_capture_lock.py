"""A second ``serve`` on the same capture store refuses to start, naming the first's pid,
and leaves the first's unix socket alone (as a second serve on the same queue does)."""

from __future__ import annotations

import smtplib
import socket
import subprocess
import sys
from pathlib import Path

from helpers import free_port

from .processes import RelayProcess, write_config


def greeting(path: Path) -> int:
    """The reply code of the SMTP greeting on the unix socket ``path``."""
    client = smtplib.SMTP()
    client.sock = socket.socket(socket.AF_UNIX)
    client.sock.settimeout(5)
    client.sock.connect(str(path))
    code, _ = client.getreply()
    client.close()
    return code


def config(tmp_path: Path, name: str, port: int) -> Path:
    """Capture mode on ``tmp_path/mail``, listening on ``port`` and ``tmp_path/smtp.sock``."""
    return write_config(
        tmp_path / f"{name}.yaml",
        listen=[f"127.0.0.1:{port}", {"unix": str(tmp_path / "smtp.sock")}],
        capture={"path": str(tmp_path / "mail")},
    )


def test_a_second_capture_serve_refuses_and_leaves_the_socket(tmp_path: Path) -> None:
    port = free_port()
    first = RelayProcess(config(tmp_path, "first", port), port, tmp_path / "first.log")
    first.start()
    try:
        assert greeting(tmp_path / "smtp.sock") == 220
        command = [sys.executable, "-m", "relay", "serve", "--config"]
        second = subprocess.Popen(
            [*command, str(config(tmp_path, "second", free_port()))],
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            _, errors = second.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            second.terminate()
            second.communicate()
            raise AssertionError("the second serve started on the first one's store") from None
        assert second.returncode == 71, errors
        assert f"in use by another notify-relay (pid {first.pid})" in errors
        assert str(tmp_path / "mail") in errors
        assert greeting(tmp_path / "smtp.sock") == 220  # still the first one's socket
    finally:
        first.stop()
