"""YAML filter tests: the shipped test files pass, and a wrong expectation fails."""

from __future__ import annotations

from pathlib import Path

import pytest

from relay.gmail import RuleFileError, run_checks

RULES = Path(__file__).parents[3] / "rules"


@pytest.mark.parametrize("name", ["trac-own-changes-tests.yaml", "example-filters-tests.yaml"])
def test_shipped_filter_tests_pass(name: str) -> None:
    report = run_checks(RULES / name)
    assert report.failed == 0, [o.problems for o in report.outcomes if not o.passed]
    assert report.passed >= 5


def _write(tmp_path: Path, text: str) -> Path:
    (tmp_path / "rules.yaml").write_text(
        "filters:\n  - from: trac@trac.example.org\n    query: '\"Changes (by ${who})\"'\n"
        "    actions: {archive: true, labels: [mine]}\nparams: {who: dave}\n",
        encoding="utf-8",
    )
    path = tmp_path / "tests.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_wrong_expectations_fail_with_what_differed(tmp_path: Path, trac_dir: Path) -> None:
    eml = trac_dir / "new-and-change" / "0002.eml"
    path = _write(
        tmp_path,
        f"""
rules: rules.yaml
messages:
  change: {{eml: {eml}}}
tests:
  - name: right
    message: change
    actions: {{labels: [MINE], archive: true}}
    matched: ['1']
  - name: wrong actions
    message: change
    actions: {{archive: true}}
  - name: wrong param
    params: {{who: alice}}
    message: change
    matched: ['1']
  - name: wrong query expectation
    message: change
    query: 'larger:10K'
    match: true
  - name: inline message and dates
    message:
      headers: {{From: trac@trac.example.org, Subject: x}}
      body: 'Changes (by dave):'
      received_at: '2025-01-01T00:00:00Z'
    query: 'after:2024/12/31 before:2025/01/02 older_than:1y'
    now: '2026-01-02T00:00:00Z'
    match: true
""",
    )
    report = run_checks(path)
    assert [o.passed for o in report.outcomes] == [True, False, False, False, True]
    assert (report.passed, report.failed) == (2, 3)
    assert report.outcomes[1].problems == (
        "change: expected actions {'archive': True}, got {'archive': True, 'labels': ['mine']}",
    )
    assert "expected filters ['1'] to match, got []" in report.outcomes[2].problems[0]
    assert "expected the query to match" in report.outcomes[3].problems[0]


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("tests: [{name: x}]", "needs 'message' or 'messages'"),
        ("tests: [{message: nothing, match: true, query: a}]", "no message named 'nothing'"),
        ("tests: [{message: {body: x}, query: a}]", "match: true"),
        ("tests: [{message: {body: x}, actions: {}}]", "needs 'rules'"),
        ("tests: [{message: {bodyy: x}, query: a, match: true}]", "unknown message keys: bodyy"),
        ("tests: [{message: {eml: missing.eml}, query: a, match: true}]", "cannot read"),
        ("tests: [{message: {body: x}, color: 1}]", "unknown keys: color"),
    ],
)
def test_invalid_test_files_raise(tmp_path: Path, text: str, problem: str) -> None:
    with pytest.raises(RuleFileError) as error:
        run_checks(_write(tmp_path, text))
    assert problem in str(error.value)
