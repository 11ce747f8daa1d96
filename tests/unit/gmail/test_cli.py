"""``notify-relay filters``: the real command in a subprocess, on real Trac messages."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from relay.cli import main as cli_main

ROOT = Path(__file__).parents[3]
SEED_DAVE = 'from:(trac@trac.example.org) (("Reporter: dave" -Changes) OR "Changes (by dave)")'
# Until the lead lists "filters" in relay.cli.main.VERBS, drive the verb module directly.
_DRIVER = (
    "import argparse, sys; from relay.cli import filters; p = argparse.ArgumentParser("
    "prog='notify-relay'); filters.add_parser(p.add_subparsers(dest='verb', required=True)); "
    "a = p.parse_args(); sys.exit(a.func(a))"
)


def run(*args: str | Path) -> subprocess.CompletedProcess[str]:
    command = ["-m", "relay"] if "filters" in cli_main.VERBS else ["-c", _DRIVER]
    return subprocess.run(
        [sys.executable, *command, "filters", *map(str, args)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
    )


def test_match_prints_matching_files_and_exits_0(trac_dir: Path) -> None:
    files = sorted(trac_dir.glob("*/*.eml"))
    result = run("match", SEED_DAVE, *files)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        str(trac_dir / "always-public-cc/0002.eml"),
        str(trac_dir / "new-and-change/0002.eml"),
        str(trac_dir / "short-addr/0002.eml"),
    ]


def test_match_exits_1_when_nothing_matches(trac_dir: Path) -> None:
    result = run("match", "has:attachment", trac_dir / "qp/0001.eml")
    assert (result.returncode, result.stdout) == (1, "")


def test_syntax_error_prints_query_caret_and_expectation(trac_dir: Path) -> None:
    result = run("match", "subject:(a b", trac_dir / "qp/0001.eml")
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        "subject:(a b",
        "            ^",
        "expected ')' to close the '(' at column 9 (column 13)",
    ]


def test_unreadable_file_is_exit_2(tmp_path: Path) -> None:
    result = run("match", "x", tmp_path / "missing.eml")
    assert result.returncode == 2
    assert "missing.eml" in result.stderr


def test_explain_shows_the_tree_and_the_text(trac_dir: Path) -> None:
    result = run("match", "--explain", SEED_DAVE, trac_dir / "new-and-change/0002.eml")
    assert result.returncode == 0
    lines = result.stdout.splitlines()
    assert lines[1].startswith("  [x] from:trac@trac.example.org")
    assert '          [x] "Changes (by dave)"' in lines
    assert "                body: Changes (by dave@…):" in lines


def test_explain_json_and_options(tmp_path: Path) -> None:
    eml = tmp_path / "m.eml"
    eml.write_bytes(b"From: x@example.com\r\nTo: me@example.com\r\nSubject: hi\r\n\r\nbody\r\n")
    result = run(
        "match",
        "--explain",
        "--json",
        "--me",
        "me@example.com",
        "--received",
        "2025-06-01T12:00:00+00:00",
        "--now",
        "2025-06-10T00:00:00Z",
        "--timezone",
        "UTC",
        "to:me after:2025/06/01 older_than:7d",
        eml,
    )
    assert result.returncode == 0, result.stderr
    tree = json.loads(result.stdout)
    assert tree["file"] == str(eml)
    assert [child["matched"] for child in tree["children"]] == [True, True, True]


def test_apply_text_and_json(trac_dir: Path) -> None:
    eml = trac_dir / "new-and-change/0002.eml"
    text = run("apply", "rules/trac-own-changes.yaml", eml)
    assert text.returncode == 0
    assert text.stdout.splitlines()[1:4] == [
        "  matched:   #1 trac-own-changes",
        "  labels:    (none)",
        "  state:     unread, trashed",
    ]
    data = json.loads(
        run(
            "apply", "--json", "--param", "username=alice", "rules/trac-own-changes.yaml", eml
        ).stdout
    )
    assert data[0]["matched"] == []
    assert data[0]["trashed"] is False


def test_test_verb_prints_the_closing_line_and_fails_on_failure(tmp_path: Path) -> None:
    passing = run("test", "rules/trac-own-changes-tests.yaml")
    assert passing.returncode == 0
    assert passing.stdout.splitlines()[-1] == "9 passed, 0 failed"
    failing = tmp_path / "t.yaml"
    failing.write_text(
        "tests:\n  - {name: no, message: {body: hello}, query: bye, match: true}\n",
        encoding="utf-8",
    )
    result = run("test", failing)
    assert result.returncode == 1
    assert result.stdout.splitlines()[-1] == "0 passed, 1 failed"


@pytest.mark.parametrize("output", [False, True])
def test_export_then_import_round_trips(tmp_path: Path, output: bool) -> None:
    xml = tmp_path / "mailFilters.xml"
    exported = run("export", "rules/example-filters.yaml", *(["-o", xml] if output else []))
    assert exported.returncode == 0
    if not output:
        xml.write_text(exported.stdout, encoding="utf-8")
    imported = run("import", xml)
    assert imported.returncode == 0
    assert "negatedQuery: '\"Owner: bob\"'" in imported.stdout
    (tmp_path / "again.yaml").write_text(imported.stdout, encoding="utf-8")
    again = run("export", tmp_path / "again.yaml").stdout
    assert again.count("<entry>") == 5
    assert _stable(again) == _stable(xml.read_text(encoding="utf-8"))


def _stable(xml: str) -> list[str]:
    """The lines of an export that do not depend on the time it was made."""
    return [line for line in xml.splitlines() if "<id>" not in line and "<updated>" not in line]
