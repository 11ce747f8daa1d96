"""Every YAML example of the upstream how-to pages passes ``notify-relay check-config``.

The pages are docs/how-to/gmail.md, microsoft-365.md and upstreams-and-mx.md. The secret
files an example names (``/etc/notify-relay/…``, ``/var/lib/notify-relay/…``) are made
under the test's directory with mode 0600, as the pages tell the admin to.
"""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

import pytest

from relay.cli.main import main

HOW_TO = Path(__file__).parents[3] / "docs" / "how-to"
PAGES = ("gmail.md", "microsoft-365.md", "upstreams-and-mx.md")
_SECRET_DIRS = re.compile(r"/(?:etc|var/lib)/notify-relay/")


def upstream_examples() -> list[str]:
    """The YAML blocks of the upstream pages (those inside numbered steps are indented)."""
    blocks = []
    for page in PAGES:
        text = (HOW_TO / page).read_text(encoding="utf-8")
        blocks += re.findall(r"^( *)```yaml\n(.*?)^\1```", text, flags=re.S | re.M)
    return [textwrap.dedent(block) for _, block in blocks]


EXAMPLES = upstream_examples()


def test_the_pages_have_their_examples():
    titles = {
        "gmail.md": "# Relay through Gmail",
        "microsoft-365.md": "# Relay through Microsoft 365",
    }
    for page, title in titles.items():
        assert (HOW_TO / page).read_text(encoding="utf-8").startswith(title)
    assert len(EXAMPLES) >= 7


@pytest.mark.parametrize(
    "example", EXAMPLES, ids=[f"{n}-{e.split(chr(10))[0]}" for n, e in enumerate(EXAMPLES)]
)
def test_each_example_passes_check_config(example, tmp_path, capsys):
    text = _SECRET_DIRS.sub(f"{tmp_path}/", example)
    for name in re.findall(re.escape(str(tmp_path)) + r"/([\w.-]+)", text):
        secret = tmp_path / name
        secret.write_text("a-secret\n")
        secret.chmod(0o600)
    config = tmp_path / "relay.yaml"
    config.write_text(text)
    assert main(["check-config", str(config)]) == 0, capsys.readouterr().err
    assert ": OK: " in capsys.readouterr().out
