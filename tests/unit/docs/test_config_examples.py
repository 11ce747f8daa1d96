"""Every YAML config example of the README and the docs pages passes ``check-config``.

Pages whose examples are whole configs are listed in PAGES (fragments of other sections,
such as a rules file, are not configs). The secret files an example names
(``/etc/notify-relay/…``, ``/var/lib/notify-relay/…``) are made under the test's directory
with mode 0600, as the pages tell the admin to.
"""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

import pytest
from helpers import write_users

from relay.cli.main import main

ROOT = Path(__file__).parents[3]
PAGES = (
    "README.md",
    "docs/getting-started/quick-start.md",
    "docs/how-to/gmail.md",
    "docs/how-to/microsoft-365.md",
    "docs/how-to/upstreams-and-mx.md",
    "docs/how-to/trac.md",
    "docs/how-to/systemd.md",
    "docs/how-to/web-security.md",
)
# Where the pages put secrets: config directories, and systemd's credentials directory.
_SECRET_DIRS = re.compile(r"/(?:etc|var/lib)/notify-relay/|/run/credentials/notify-relay\.service/")


def config_examples() -> list[str]:
    """The YAML blocks of PAGES (those inside numbered steps are indented)."""
    blocks = []
    for page in PAGES:
        text = (ROOT / page).read_text(encoding="utf-8")
        blocks += re.findall(r"^( *)```yaml\n(.*?)^\1```", text, flags=re.S | re.M)
    return [textwrap.dedent(block) for _, block in blocks]


EXAMPLES = config_examples()


def test_the_pages_have_their_examples():
    titles = {
        "docs/how-to/gmail.md": "# Relay through Gmail",
        "docs/how-to/microsoft-365.md": "# Relay through Microsoft 365",
    }
    for page, title in titles.items():
        assert (ROOT / page).read_text(encoding="utf-8").startswith(title)
    assert len(EXAMPLES) >= 12


@pytest.mark.parametrize(
    "example", EXAMPLES, ids=[f"{n}-{e.split(chr(10))[0]}" for n, e in enumerate(EXAMPLES)]
)
def test_each_example_passes_check_config(example, tmp_path, capsys):
    text = _SECRET_DIRS.sub(f"{tmp_path}/", example)
    for name in re.findall(re.escape(str(tmp_path)) + r"/([\w.-]+)", text):
        if "users" in name:  # a users file: login:hash lines
            write_users(tmp_path / name, {"ann": "a-secret"})
        else:
            secret = tmp_path / name
            secret.write_text("a-secret\n")
            secret.chmod(0o600)
    config = tmp_path / "relay.yaml"
    config.write_text(text)
    assert main(["check-config", str(config)]) == 0, capsys.readouterr().err
    assert ": OK: " in capsys.readouterr().out
