"""The config examples of the DKIM, list-header and Microsoft 365 OAuth pages pass
``check-config``, with real keys and certificates where the examples name them (the other
pages' examples are checked by test_config_examples.py with placeholder secrets)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
from oauthserver import app_certificate, private

from relay.cli.main import main
from relay.deliver.dkim import generate_key

ROOT = Path(__file__).parents[3]
PAGES = ("docs/how-to/dkim.md", "docs/how-to/list-headers.md", "docs/how-to/microsoft-365-oauth.md")
EXAMPLES = [
    block
    for page in PAGES
    for block in re.findall(r"```yaml\n(.*?)```", (ROOT / page).read_text(), flags=re.S)
]


def make_files(data: dict, directory: Path) -> None:
    """The key, certificate and secret files ``data`` names, as the pages tell to make them."""
    for entry in data.get("dkim") or ():
        path = Path(entry["private_key_file"])
        path.parent.mkdir(parents=True, exist_ok=True)
        private(path, generate_key(entry.get("algorithm", "rsa-sha256")))
    oauth = (data.get("upstream") or {}).get("oauth") or {}
    if "client_certificate_file" in oauth:
        certificate = Path(oauth["client_certificate_file"])
        app_certificate(certificate.parent, certificate.stem)
    for name in ("client_secret_file", "refresh_token_file"):
        if name in oauth:
            private(Path(oauth[name]), b"a-secret\n")


def test_the_pages_have_their_examples():
    assert len(EXAMPLES) >= 4


@pytest.mark.parametrize("example", EXAMPLES, ids=[e.split("\n")[0] for e in EXAMPLES])
def test_each_example_passes_check_config(example, tmp_path, capsys):
    text = re.sub(r"/(?:etc|var/lib)/notify-relay/", f"{tmp_path}/", example)
    make_files(yaml.safe_load(text), tmp_path)
    config = tmp_path / "relay.yaml"
    config.write_text(text)
    assert main(["check-config", str(config)]) == 0, capsys.readouterr().err
