"""The container and systemd files agree with the config they ship or describe."""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from relay.config import load_config

ROOT = Path(__file__).resolve().parents[3]
DOCKER = ROOT / "docker"


def unit_settings(text: str) -> dict[str, list[str]]:
    """``Key=Value`` lines of a systemd unit, every value of a repeated key in order."""
    settings: dict[str, list[str]] = {}
    for line in text.splitlines():
        if "=" in line and not line.startswith(("#", ";", "[")):
            key, _, value = line.partition("=")
            settings.setdefault(key.strip(), []).append(value.strip())
    return settings


def healthcheck_url(dockerfile: str) -> str:
    """The URL the HEALTHCHECK instruction opens."""
    instruction = re.search(r"^HEALTHCHECK (.*?)(?<!\\)$", dockerfile, re.M | re.S)
    assert instruction, "no HEALTHCHECK"
    url = re.search(r"https?://[^'\"\s]+", instruction.group(1))
    assert url, instruction.group(0)
    return url.group(0)


def test_image_default_config_is_capture_mode_with_the_healthcheck_port() -> None:
    config = load_config(DOCKER / "capture.yaml")
    assert config.capture_mode and str(config.capture.path) == "/var/lib/notify-relay/mail"
    healthcheck = re.fullmatch(
        r"http://127\.0\.0\.1:(\d+)/\w+", healthcheck_url((DOCKER / "Dockerfile").read_text())
    )
    assert healthcheck and config.web.listen.port == int(healthcheck.group(1))


def test_the_healthcheck_asks_livez_so_an_upstream_outage_is_not_unhealthy() -> None:
    # /readyz turns 503 after 10 minutes of upstream failures: Docker would call a relay
    # that is queueing mail as it should "unhealthy" (and an orchestrator would restart it).
    assert healthcheck_url((DOCKER / "Dockerfile").read_text()).endswith("/livez")


def test_the_image_installs_the_constraints_and_copies_the_rules() -> None:
    dockerfile = (DOCKER / "Dockerfile").read_text()
    assert re.search(r"pip install .*--constraint constraints\.txt \.", dockerfile)
    assert re.search(r"^COPY rules ", dockerfile, re.M)


def test_the_constraints_pin_every_runtime_dependency_within_its_floor() -> None:
    pins = {}
    for line in (DOCKER / "constraints.txt").read_text().splitlines():
        if line and not line.startswith("#"):
            name, _, version = line.partition("==")
            pins[name.lower().replace("_", "-")] = version
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    for requirement in map(Requirement, project["dependencies"]):
        name = requirement.name.lower().replace("_", "-")
        assert name in pins, f"docker/constraints.txt has no exact version of {name}"
        assert requirement.specifier.contains(pins[name]), f"{name}=={pins[name]}: {requirement}"
    test_script = (ROOT / ".ci" / "test.sh").read_text()
    assert "-c docker/constraints.txt" in test_script, "the tests must run on the pinned versions"


def test_relay_mode_config_reads_the_password_from_the_compose_secret() -> None:
    config = load_config(DOCKER / "relay.yaml")  # names the file; the relay reads it
    assert config.upstream is not None
    assert str(config.upstream.password_file) == "/run/secrets/upstream_password"
    assert "upstream_password:" in (DOCKER / "compose.yaml").read_text()


def test_systemd_credential_and_directories_match_the_documented_paths() -> None:
    unit = (DOCKER / "notify-relay.service").read_text()
    assert "LoadCredential=upstream-password:" in unit
    assert "/run/credentials/notify-relay.service/upstream-password" in unit
    assert "StateDirectory=notify-relay" in unit and "RuntimeDirectory=notify-relay" in unit


def test_the_password_credential_is_optional() -> None:
    # LoadCredential=ID:/absolute/path fails the start (243/CREDENTIALS) when the file is
    # missing, as it is for a smarthost without a password. A relative name is looked up in
    # /etc/credstore/ and /run/credstore/ and skipped when absent (systemd >= 251).
    settings = unit_settings((DOCKER / "notify-relay.service").read_text())
    for value in settings["LoadCredential"]:
        _, _, source = value.partition(":")
        assert source and not source.startswith("/"), f"LoadCredential={value} is mandatory"


def test_the_unit_runs_the_documented_install_location() -> None:
    settings = unit_settings((DOCKER / "notify-relay.service").read_text())
    (command,) = settings["ExecStart"]
    assert shlex.split(command)[0] == "/usr/local/bin/notify-relay"
    install = (ROOT / "docs" / "getting-started" / "install.md").read_text()
    assert "PIPX_BIN_DIR=/usr/local/bin pipx install" in install  # pipx's links
    assert "/opt/notify-relay/bin/notify-relay-sendmail /usr/local/bin/" in install  # a venv's


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="no systemd-analyze")
def test_systemd_analyze_verifies_the_unit(tmp_path: Path) -> None:
    unit = (DOCKER / "notify-relay.service").read_text()
    installed = shutil.which("notify-relay")
    assert installed, "pip install -e . first"
    copy = tmp_path / "notify-relay.service"
    copy.write_text(unit.replace("/usr/local/bin/notify-relay", installed))
    done = subprocess.run(
        ["systemd-analyze", "verify", str(copy)], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0 and "notify-relay.service" not in done.stderr, done.stderr


def test_files_named_in_the_docker_directory_exist() -> None:
    for path in (path for path in DOCKER.rglob("*") if path.is_file()):
        for name in re.findall(r"\b((?:docs/[\w/.-]+|README[\w.]*)\.md)\b", path.read_text()):
            assert (ROOT / name).is_file(), f"{path.name} refers to {name}, which does not exist"


def test_systemd_lets_the_supervisor_stop_its_processes_in_order() -> None:
    """With the default KillMode every process gets SIGTERM at once; ``mixed`` sends it to
    the supervisor only, which stops the receive workers before delivery."""
    settings = unit_settings((DOCKER / "notify-relay.service").read_text())
    assert settings["KillMode"] == ["mixed"]
