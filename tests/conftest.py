"""Shared fixtures: trustme certificates, a real upstream, and the relay on loopback."""

from __future__ import annotations

import io
import json
import logging
import ssl
import subprocess
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
import trustme
from helpers import write_users

from relay.config import RelayConfig
from relay.credentials import read_credentials
from relay.log import setup_logging
from relay.service import Relay
from relay.testing.capture import write_config

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture(scope="session")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="session")
def server_context(ca: trustme.CA) -> ssl.SSLContext:
    """The upstream's TLS context: a certificate for 127.0.0.1 and localhost."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1", "localhost").configure_cert(context)
    return context


@pytest.fixture(scope="session")
def ca_file(ca: trustme.CA, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("ca") / "ca.pem"
    ca.cert_pem.write_to_path(str(path))
    return path


@pytest.fixture(scope="session")
def client_context(ca_file: Path) -> ssl.SSLContext:
    """A client's TLS context trusting the test CA (for STARTTLS to the relay's listener)."""
    return ssl.create_default_context(cafile=str(ca_file))


@pytest.fixture(scope="session")
def listener_cert(ca: trustme.CA, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The relay listener's certificate chain and key files, for 127.0.0.1 and localhost."""
    leaf = ca.issue_cert("127.0.0.1", "localhost")
    directory = tmp_path_factory.mktemp("listener")
    cert, key = directory / "cert.pem", directory / "key.pem"
    cert.write_bytes(b"".join(blob.bytes() for blob in leaf.cert_chain_pems))
    leaf.private_key_pem.write_to_path(str(key))
    return cert, key


@pytest.fixture
def listen_security(listener_cert: tuple[Path, Path], tmp_path: Path) -> Callable[..., Any]:
    """Config sections for STARTTLS on the listener and, given ``users`` (login: password),
    AUTH; other keywords go to ``listen_auth``."""

    def sections(
        *, required: bool = False, users: dict[str, str] | None = None, **auth: Any
    ) -> dict[str, Any]:
        cert, key = listener_cert
        tls = {"cert_file": str(cert), "key_file": str(key), "required": required}
        if users is None:
            return {"listen_tls": tls}
        path = write_users(tmp_path / "users", users)
        return {"listen_tls": tls, "listen_auth": {"users_file": str(path), **auth}}

    return sections


@pytest.fixture
def password_file(tmp_path: Path) -> Path:
    path = tmp_path / "password"
    path.write_text("s3cret-app-password\n")
    path.chmod(0o600)
    return path


@pytest.fixture
def make_config(tmp_path: Path) -> Callable[..., RelayConfig]:
    """Write a YAML config under tmp_path (listening on a free port, quick retries) and load it."""

    def make(**sections: Any) -> RelayConfig:
        retry = {"min_backoff": 0.2, "max_backoff": 1, "jitter": 0}
        config = write_config(tmp_path, **{"queue": {"path": "queue", "retry": retry}, **sections})
        read_credentials(config)  # as the relay does at start: the files it names are valid
        return config

    return make


@pytest.fixture
async def start_relay() -> AsyncIterator[Callable[[RelayConfig], Any]]:
    """Start relays in the test's event loop; all are stopped at the end."""
    relays: list[Relay] = []

    async def start(config: RelayConfig) -> Relay:
        relay = Relay(config)
        await relay.start()
        relays.append(relay)
        return relay

    yield start
    for relay in relays:
        await relay.stop()


@pytest.fixture(autouse=True)
def relay_log_level(caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    """Capture the relay's INFO lines (per-delivery lines) so tests can assert on them.

    An in-process CLI test may have run ``setup_logging`` (own handler, no propagation);
    undo that for each test so caplog sees the lines.
    """
    relay_logger = logging.getLogger("notify-relay")
    monkeypatch.setattr(relay_logger, "propagate", True)
    monkeypatch.setattr(relay_logger, "handlers", [])
    caplog.set_level(logging.INFO, logger="notify-relay")


@pytest.fixture
def json_log(monkeypatch: pytest.MonkeyPatch) -> Callable[[], list[dict[str, Any]]]:
    """The relay's log as ``serve --log-format json`` writes it: call for the events so far
    (the handler and stderr are restored with the test's other patches)."""
    stream = io.StringIO()
    monkeypatch.setattr("sys.stderr", stream)
    setup_logging(fmt="json")
    return lambda: [json.loads(line) for line in stream.getvalue().splitlines()]


@pytest.fixture
def small_disk(tmp_path):
    """A 1 MiB tmpfs at tmp_path/disk (a real full disk: :func:`helpers.fill`), unmounted
    at the end; skipped where mounting is not allowed."""
    path = tmp_path / "disk"
    path.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=1m,mode=0700", "tmpfs", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        pytest.skip(
            "not applicable here: mounting a small tmpfs needs root with CAP_SYS_ADMIN "
            f"({done.stderr.strip() or done.returncode})"
        )
    yield path
    subprocess.run(["umount", "-l", str(path)], check=False)
