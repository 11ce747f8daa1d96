"""Config loading: typed values, and errors that name the file, the key and what is allowed."""

from __future__ import annotations

import dataclasses
import pickle
import subprocess
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest

from relay.config import RelayConfig, load_config
from relay.credentials import read_credentials
from relay.errors import ConfigError
from relay.receive.options import TcpListener, UnixListener
from relay.secret import Secret


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "relay.yaml"
    path.write_text(text)
    return path


def error_of(tmp_path: Path, text: str) -> str:
    """The error of loading ``text``, and of reading what it names, as the relay starts."""
    with pytest.raises(ConfigError) as raised:
        read_credentials(load_config(write(tmp_path, text)))
    return str(raised.value)


def password_of(config: RelayConfig) -> str:
    """The first upstream's password, as read at start."""
    password = read_credentials(config).upstream[config.upstream].password
    assert password is not None
    return password.reveal()


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
    assert password_of(config) == "s3cret-app-password"
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
    assert password_of(config) == "from-env"
    config = load_config(
        write(tmp_path, "upstream: {host: x, username: u, password_command: 'echo from-cmd'}\n")
    )
    assert password_of(config) == "from-cmd"
    assert "RELAY_NOPE is not set" in error_of(
        tmp_path, "upstream: {host: x, username: u, password_env: RELAY_NOPE}\n"
    )


def test_secrets_never_show_in_repr(tmp_path):
    config = load_config(write(tmp_path, "upstream: {host: x, username: u, password: hunter2}\n"))
    credentials = read_credentials(config)
    assert password_of(config) == "hunter2"
    assert "hunter2" not in repr(config) and "hunter2" not in repr(credentials)


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


def leaves(value: object, path: str = "") -> Iterator[tuple[str, object]]:
    """Every value inside ``value`` with its path: dataclass fields (computed ones too) and
    items, down to what is neither a dataclass nor a collection."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        for spec in dataclasses.fields(value):
            yield from leaves(getattr(value, spec.name), f"{path}.{spec.name}")
    elif isinstance(value, Mapping):
        for key, item in value.items():
            yield from leaves(key, f"{path}{{key}}")
            yield from leaves(item, f"{path}[{key!r}]")
    elif isinstance(value, tuple | list | frozenset | set):
        for n, item in enumerate(value):
            yield from leaves(item, f"{path}[{n}]")
    else:
        yield path, value


def test_the_loaded_config_holds_no_secret_value(tmp_path, monkeypatch):
    """Config is plain data: where each secret comes from, never the secret itself."""
    secrets = {name: f"{name}-Xq7-value" for name in ("password", "client", "refresh", "env")}
    for name in ("password", "client", "refresh"):
        (tmp_path / name).write_text(secrets[name] + "\n")
        (tmp_path / name).chmod(0o600)
    monkeypatch.setenv("RELEASE_PW", secrets["env"])
    path = write(
        tmp_path,
        """
upstreams:
  - {name: file, host: a.example, username: u, password_file: password}
  - {name: cmd, host: b.example, username: u, password_command: "printf %s-%s command Xq7-value"}
  - name: oauth
    host: smtp.gmail.com
    username: u@example.org
    auth: xoauth2
    oauth: {provider: google, client_id: id.apps, client_secret_file: client,
             refresh_token_file: refresh}
capture:
  release: {upstream: {host: c.example, username: u, password_env: RELEASE_PW}}
""",
    )
    config = load_config(path)
    texts = [*secrets.values(), "command-Xq7-value"]
    found = [
        path
        for path, value in leaves(config)
        if isinstance(value, Secret) or any(text in str(value) for text in texts)
    ]
    assert found == []
    pickled = pickle.dumps(config)
    assert [text for text in texts if text.encode() in pickled] == []
