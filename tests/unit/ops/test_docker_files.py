"""The container and systemd files agree with the config they ship or describe."""

from __future__ import annotations

import re
from pathlib import Path

from relay.config import load_config

DOCKER = Path(__file__).resolve().parents[3] / "docker"


def test_image_default_config_is_capture_mode_with_the_healthcheck_port() -> None:
    config = load_config(DOCKER / "capture.yaml")
    assert config.capture_mode and str(config.capture.path) == "/var/lib/notify-relay/mail"
    healthcheck = re.search(
        r"http://127\.0\.0\.1:(\d+)/readyz", (DOCKER / "Dockerfile").read_text()
    )
    assert healthcheck and config.web.listen.port == int(healthcheck.group(1))


def test_relay_mode_config_reads_the_password_from_the_compose_secret() -> None:
    config = load_config(DOCKER / "relay.yaml", secrets=False)
    assert config.upstream is not None and config.upstream.secret is None
    assert str(config.upstream.password_file) == "/run/secrets/upstream_password"
    assert "upstream_password:" in (DOCKER / "compose.yaml").read_text()


def test_systemd_credential_and_directories_match_the_documented_paths() -> None:
    unit = (DOCKER / "notify-relay.service").read_text()
    assert "LoadCredential=upstream-password:" in unit
    assert "/run/credentials/notify-relay.service/upstream-password" in unit
    assert "StateDirectory=notify-relay" in unit and "RuntimeDirectory=notify-relay" in unit
