"""The example configs shipped in docker/examples load (secrets stubbed where they point)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from relay.config import load_config

EXAMPLES = sorted((Path(__file__).resolve().parents[3] / "docker" / "examples").glob("*.yaml"))


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda path: path.name)
def test_example_config_loads(example, tmp_path):
    data = yaml.safe_load(example.read_text())
    upstream = data.get("upstream", {})
    if "password_file" in upstream:  # the real file lives on the server
        secret = tmp_path / "password"
        secret.write_text("app-password\n")
        secret.chmod(0o600)
        upstream["password_file"] = str(secret)
    copy = tmp_path / example.name
    copy.write_text(yaml.safe_dump(data))
    config = load_config(copy)
    assert config.upstream is not None and config.upstream.tls == "starttls"


def test_examples_exist():
    assert {path.name for path in EXAMPLES} >= {"gmail.yaml", "smarthost.yaml"}
