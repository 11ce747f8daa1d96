"""``notify-relay serve`` flags and NOTIFY_RELAY_* variables, through a real process."""

from __future__ import annotations

import smtplib
import subprocess
import sys
import urllib.request
from email.message import EmailMessage
from pathlib import Path

import pytest
import yaml
from hardening.processes import RelayProcess
from helpers import free_port, wait_for_port
from upstream import FakeUpstream

ROOT = Path(__file__).resolve().parents[2]


def message(subject: str) -> EmailMessage:
    mail = EmailMessage()
    mail["From"] = "app@example.org"
    mail["To"] = "dev@example.org"
    mail["Subject"] = subject
    mail.set_content("hello")
    return mail


def stored(mail_dir: Path) -> list[bytes]:
    return [path.read_bytes() for path in sorted((mail_dir / "new").glob("*"))]


@pytest.fixture
def started(tmp_path):
    processes: list[RelayProcess] = []

    def start(port: int, *args: str, config: Path | None = None, **env: str) -> RelayProcess:
        log = tmp_path / f"serve{len(processes)}.log"
        process = RelayProcess(config, port, log, args=args, env=env, cwd=tmp_path)
        processes.append(process)
        process.start()
        return process

    yield start
    for process in processes:
        process.stop()


def test_flags_without_a_config_file(started, tmp_path):
    port, sock, mail_dir = free_port(), tmp_path / "run" / "smtp.sock", tmp_path / "captured"
    process = started(
        port,
        "--smtp", f"127.0.0.1:{port}",
        "--smtp", f"unix:{sock}",
        "--web", "off",
        "--mail-dir", str(mail_dir),
    )  # fmt: skip
    with smtplib.SMTP("127.0.0.1", port) as client:
        client.send_message(message("over TCP"))
    assert sock.is_socket()
    assert any(b"Subject: over TCP" in data for data in stored(mail_dir))
    log = process.log.read_text()
    assert f"listening on unix:{sock}" in log and "web: page and API" not in log
    assert not (tmp_path / "mail").exists()  # not the default store


def test_environment_variables_and_flags_over_a_config_file(started, tmp_path):
    port, web, file_web = free_port(), free_port(), free_port()
    config = tmp_path / "relay.yaml"
    config.write_text(
        yaml.safe_dump({"listen": ["127.0.0.1:1"], "web": {"listen": f"127.0.0.1:{file_web}"}})
    )
    started(
        port,
        "--web", f"127.0.0.1:{web}",
        config=config,
        NOTIFY_RELAY_SMTP=f"127.0.0.1:{port}",
        NOTIFY_RELAY_WEB="off",  # the flag wins
        NOTIFY_RELAY_MAIL_DIR=str(tmp_path / "env-mail"),
    )  # fmt: skip
    with smtplib.SMTP("127.0.0.1", port) as client:
        client.send_message(message("from a container"))
    assert wait_for_port(web)
    with urllib.request.urlopen(f"http://127.0.0.1:{web}/api/v1/messages") as response:
        assert b"from a container" in response.read()
    assert stored(tmp_path / "env-mail")


@pytest.mark.parametrize("source", ["NOTIFY_RELAY_PASSWORD_FILE", "NOTIFY_RELAY_PASSWORD"])
def test_upstream_url_with_a_password_source_relays_over_starttls(
    started, tmp_path, server_context, ca_file, password_file, source
):
    config = tmp_path / "relay.yaml"  # the file's upstream gives what a URL cannot: the CA
    config.write_text(
        yaml.safe_dump(
            {
                "upstream": {"host": "unused.invalid", "ca_file": str(ca_file)},
                "web": {"enabled": False},
            }
        )
    )
    credentials = ("me@example.org", "s3cret-app-password")
    with FakeUpstream(tls="starttls", context=server_context, credentials=credentials) as up:
        port = free_port()
        started(
            port,
            "--smtp", f"127.0.0.1:{port}",
            "--upstream", f"smtp+starttls://me%40example.org@localhost:{up.port}",
            config=config,
            **{source: str(password_file) if source.endswith("FILE") else credentials[1]},
        )  # fmt: skip
        with smtplib.SMTP("127.0.0.1", port) as client:
            client.send_message(message("relayed"))
        (received,) = up.wait_for(1)
    assert received.tls and received.auth == "me@example.org"
    assert b"Subject: relayed" in received.content


@pytest.mark.parametrize(
    ("args", "env", "expected"),
    [
        (["--smtp", "localhost"], {}, '--smtp: expected "HOST:PORT"'),
        ([], {"NOTIFY_RELAY_UPSTREAM": "smtp://me@x.test"}, "NOTIFY_RELAY_UPSTREAM: a user needs"),
        (
            ["--upstream", "smtps://me@x.test", "--password-file", "/nonexistent"],
            {},
            "--password-file: upstream.password_file: cannot read /nonexistent",
        ),
    ],
)
def test_a_bad_flag_or_variable_exits_78_naming_it(tmp_path, args, env, expected):
    done = subprocess.run(
        [sys.executable, "-m", "relay", "serve", *args],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT), **env},
        timeout=60,
        check=False,
    )
    assert done.returncode == 78, done.stderr
    assert expected in done.stderr


def test_help_lists_every_flag_and_variable():
    done = subprocess.run(
        [sys.executable, "-m", "relay", "serve", "--help"],
        capture_output=True, text=True, check=True, timeout=60,
    )  # fmt: skip
    for word in ("--smtp", "--web", "--mail-dir", "--upstream", "--password-file"):
        assert word in done.stdout
    for name in ("SMTP", "WEB", "MAIL_DIR", "UPSTREAM", "PASSWORD_FILE", "PASSWORD"):
        assert f"$NOTIFY_RELAY_{name}" in done.stdout
