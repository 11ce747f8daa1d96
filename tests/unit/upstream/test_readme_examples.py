"""Every YAML example of the README's upstream sections passes ``notify-relay check-config``.

The secret files an example names (``/etc/notify-relay/…``, ``/var/lib/notify-relay/…``)
are made under the test's directory with mode 0600, as the README tells the admin to.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from relay.cli.main import main

README = Path(__file__).parents[3] / "README.md"
_SECRET_DIRS = re.compile(r"/(?:etc|var/lib)/notify-relay/")


def upstream_examples() -> list[str]:
    """The YAML blocks from "## Upstream realities" to the next top-level section."""
    text = README.read_text(encoding="utf-8")
    start = text.index("\n## Upstream realities")
    end = text.index("\n## ", start + 1)
    return re.findall(r"```yaml\n(.*?)```", text[start:end], flags=re.S)


EXAMPLES = upstream_examples()


def test_the_sections_have_their_examples():
    text = README.read_text(encoding="utf-8")
    for title in ("### Relaying through Gmail", "### Relaying through Microsoft 365"):
        assert title in text
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
