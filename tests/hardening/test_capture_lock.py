"""A second ``serve`` on the same capture store refuses to start, naming the first's pid,
and leaves the first's unix socket alone (as a second serve on the same queue does)."""

from __future__ import annotations

import os
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


async def test_the_mail_cli_beside_a_running_serve_leaves_its_index_files_alone(
    tmp_path: Path,
) -> None:
    """The server must keep SQLite's POSIX locks on the index while it runs: closing any
    descriptor of the file in its process drops them all (sqlite.org/howtocorrupt.html
    2.2), and ``mail list`` then thought itself the last user and deleted the live -wal
    and -shm from under the server (two WALs for one database: the way to corrupt it)."""
    import aiohttp
    from served import Served, mail

    with Served(tmp_path) as served:
        await served.send(mail("first"))
        async with aiohttp.ClientSession(served.url) as http:
            for number in range(8):  # each web worker thread opens its own connection
                async with http.get("/api/v1/messages", params={"q": f"w{number}"}) as response:
                    assert response.status == 200
        index = tmp_path / "mail" / "index.sqlite3"
        command = [sys.executable, "-m", "relay", "mail", "list", "--store", str(tmp_path / "mail")]
        listed = subprocess.run(command, capture_output=True, text=True, timeout=60, check=True)
        assert "first" in listed.stdout
        assert Path(f"{index}-wal").exists() and Path(f"{index}-shm").exists()
        links = Path(f"/proc/{served.process.pid}/fd").iterdir()
        open_files = [os.readlink(link) for link in links]
        assert not [name for name in open_files if name.endswith("(deleted)")], open_files
        await served.send(mail("second"))
        listed = subprocess.run(command, capture_output=True, text=True, timeout=60, check=True)
        assert "first" in listed.stdout and "second" in listed.stdout
