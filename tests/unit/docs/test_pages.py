"""The README (short, two set-up commands, links that resolve) and hand-written pages."""

from __future__ import annotations

import re
import shlex
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
README = (ROOT / "README.md").read_text(encoding="utf-8")


def test_the_readme_is_at_most_200_lines() -> None:
    assert len(README.splitlines()) <= 200, "move the detail into docs/"


def test_the_two_set_up_commands_are_there_and_ci_runs_the_second() -> None:
    set_up = README.split("## Set-up: the two commands", 1)[1].split("\n## ", 1)[0]
    commands = re.findall(r"```sh\n(.*?)\n```", set_up, flags=re.S)
    assert commands[:2] == ["pip install . && notify-relay serve", "bash .ci/test.sh"]
    run = [line for line in (ROOT / ".ci" / "run").read_text().splitlines() if "exec" in line]
    assert [shlex.split(line.split("#")[0]) for line in run] == [["exec", "bash", ".ci/test.sh"]]


def test_every_relative_link_and_image_resolves() -> None:
    links = re.findall(r"\]\(([^)\s]+)\)", README)
    assert "docs/images/screenshot.png" in links
    for link in links:
        if not re.match(r"[a-z]+:", link):
            target = link.split("#", 1)[0]
            assert (ROOT / target).exists(), f"README links to {target}, which does not exist"


def test_the_readme_is_the_package_long_description() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["readme"] == "README.md"


def test_the_gmail_reference_lists_every_operator() -> None:
    from relay.gmail.operators import OPERATORS

    page = (ROOT / "docs/reference/gmail-query-language.md").read_text(encoding="utf-8")
    missing = sorted(name for name in OPERATORS if f"`{name}:`" not in page)
    assert not missing, f"docs/reference/gmail-query-language.md does not describe {missing}"


def test_the_trac_options_page_covers_every_option_the_relay_knows() -> None:
    import dataclasses

    from relay.cleanup.options import CleanupOptions
    from relay.cleanup.tracini import parse_trac_ini

    page = (ROOT / "docs/reference/trac-options.md").read_text(encoding="utf-8")
    relay_side = [field.name for field in dataclasses.fields(CleanupOptions)]
    names = [f"notification.{name}" for name in relay_side if f"`{name}`" not in page]
    ini = "[notification]\n" + "".join(f"{name} = x\n" for name in _TRAC_ONLY)
    noted = [note.option for note in parse_trac_ini(ini).notes]
    names += [name for name in noted if f"`{name}`" not in page]
    assert not names, f"docs/reference/trac-options.md does not describe {names}"


# trac.ini options the relay does not take; the report explains each.
_TRAC_ONLY = [
    "smtp_server",
    "smtp_port",
    "smtp_user",
    "smtp_password",
    "use_tls",
    "email_sender",
    "sendmail_path",
    "smtp_from_author",
    "smtp_enabled",
    "always_notify_owner",
    "always_notify_reporter",
    "always_notify_updater",
]
