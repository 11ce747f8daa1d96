"""Config loading: typed values, and errors that name the file, the key and what is allowed."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from relay.config import load_config
from relay.errors import ConfigError
from relay.receive.options import TcpListener, UnixListener


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "relay.yaml"
    path.write_text(text)
    return path


def error_of(tmp_path: Path, text: str) -> str:
    with pytest.raises(ConfigError) as raised:
        load_config(write(tmp_path, text))
    return str(raised.value)


def test_no_config_means_capture_mode_on_loopback_2525():
    config = load_config(None)
    assert config.capture_mode and config.capture_enabled
    assert config.listen == (TcpListener("127.0.0.1", 2525),)
    assert str(config.capture.path) == "mail"


def test_the_documented_shape_loads(tmp_path, password_file):
    path = write(
        tmp_path,
        f"""
listen:
  - "127.0.0.1:2525"
  - "[::1]:2526"
  - {{unix: /run/notify-relay/smtp.sock, mode: "0660", group: root}}
allowed_networks: ["127.0.0.0/8", "::1/128"]
upstream:
  host: smtp.gmail.com
  port: 587
  tls: starttls
  username: you@gmail.com
  password_file: {password_file}
queue:
  path: /var/lib/notify-relay/queue
  retry: {{min_backoff: 5m, max_backoff: 2h, lifetime: 5d}}
capture:
  path: ./mail
  enabled: true
""",
    )
    config = load_config(path)
    assert config.listen[1] == TcpListener("::1", 2526)
    assert config.listen[2] == UnixListener(
        unix=Path("/run/notify-relay/smtp.sock"), mode=0o660, group="root"
    )
    assert config.upstream is not None and config.upstream.secret.reveal() == "s3cret-app-password"
    assert config.queue.retry.min_backoff == 300 and config.queue.retry.lifetime == 432000
    assert config.capture.path == tmp_path / "mail"  # relative to the config file
    assert not config.capture_mode and config.capture_enabled


def test_bad_port_names_file_key_and_range(tmp_path):
    message = error_of(tmp_path, "upstream:\n  host: x\n  port: 58x\n")
    assert (
        message
        == f'{tmp_path / "relay.yaml"}: upstream.port: expected an integer 1-65535, got "58x"'
    )


def test_unknown_key_is_an_error_naming_the_allowed_ones(tmp_path):
    message = error_of(tmp_path, "upstream:\n  host: x\n  pasword: y\n")
    assert "upstream.pasword: unknown key (allowed:" in message and "password_file" in message


def test_bad_tls_mode_lists_the_choices(tmp_path):
    assert "upstream.tls: expected one of starttls, implicit, none" in error_of(
        tmp_path, "upstream: {host: x, tls: ssl}\n"
    )


def test_credentials_without_tls_are_refused_unless_allowed(tmp_path):
    assert "upstream.tls: credentials with tls: none" in error_of(
        tmp_path, "upstream: {host: x, tls: none, username: u, password: p}\n"
    )
    path = write(
        tmp_path,
        "upstream: {host: x, tls: none, username: u, password: p, allow_insecure_auth: true}\n",
    )
    assert load_config(path).upstream.tls == "none"


def test_group_readable_password_file_is_refused(tmp_path, password_file):
    password_file.chmod(0o640)
    message = error_of(
        tmp_path, f"upstream: {{host: x, username: u, password_file: {password_file}}}\n"
    )
    assert "upstream.password_file" in message and "chmod 600" in message


def test_password_env_and_command(tmp_path, monkeypatch):
    monkeypatch.setenv("RELAY_PW", "from-env")
    config = load_config(
        write(tmp_path, "upstream: {host: x, username: u, password_env: RELAY_PW}\n")
    )
    assert config.upstream.secret.reveal() == "from-env"
    config = load_config(
        write(tmp_path, "upstream: {host: x, username: u, password_command: 'echo from-cmd'}\n")
    )
    assert config.upstream.secret.reveal() == "from-cmd"
    assert "RELAY_NOPE is not set" in error_of(
        tmp_path, "upstream: {host: x, username: u, password_env: RELAY_NOPE}\n"
    )


def test_secrets_never_show_in_repr(tmp_path):
    config = load_config(write(tmp_path, "upstream: {host: x, username: u, password: hunter2}\n"))
    assert "hunter2" not in repr(config) and "hunter2" not in str(config.upstream.secret)


def test_bad_listen_address(tmp_path):
    assert 'listen: expected "HOST:PORT"' in error_of(tmp_path, "listen: [localhost]\n")


def test_bad_duration(tmp_path):
    assert "queue.retry.lifetime: expected a duration" in error_of(
        tmp_path, "queue: {retry: {lifetime: 5 days}}\n"
    )


def test_not_yaml(tmp_path):
    assert "not valid YAML" in error_of(tmp_path, "listen: [\n")


def test_check_config_command(tmp_path):
    good = write(tmp_path, "listen: ['127.0.0.1:2525']\n")
    run = subprocess.run(
        [sys.executable, "-m", "relay", "check-config", str(good)], capture_output=True, text=True
    )
    assert run.returncode == 0 and "capture mode" in run.stdout
    good.write_text("upstream: {host: x, port: 0}\n")
    run = subprocess.run(
        [sys.executable, "-m", "relay", "check-config", str(good)], capture_output=True, text=True
    )
    assert run.returncode == 78 and "upstream.port: expected a value 1-65535, got 0" in run.stderr
