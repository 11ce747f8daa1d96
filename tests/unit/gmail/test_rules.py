"""YAML rule files: the shipped ones, params, round trip through YAML and XML, errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from relay.gmail import Actions, RuleFileError, dump_rules, load_rules, read_rules

RULES = Path(__file__).parents[3] / "rules"


def test_shipped_seed_filter_with_params() -> None:
    ruleset = load_rules(RULES / "trac-own-changes.yaml", params={"username": "alice"})
    (rule,) = ruleset.filters
    assert rule.name == "trac-own-changes"
    assert rule.criteria.from_ == "trac@trac.example.org"
    assert rule.criteria.query == '(("Reporter: alice" -Changes) OR "Changes (by alice)")'
    assert rule.actions == Actions(delete=True)


def test_every_shipped_rules_file_loads_without_warnings() -> None:
    files = sorted(p for p in RULES.glob("*.yaml") if not p.stem.endswith("-tests"))
    assert files
    for path in files:
        assert load_rules(path).warnings == ()


def test_yaml_round_trip_keeps_the_filters() -> None:
    ruleset = load_rules(RULES / "example-filters.yaml")
    again = read_rules(dump_rules(ruleset), "dumped")
    assert again.filters == ruleset.filters
    assert again.mode == ruleset.mode


def test_load_rules_reads_xml_by_extension_and_by_content(tmp_path: Path) -> None:
    example = Path(__file__).with_name("mailFilters-example.xml").read_bytes()
    (tmp_path / "filters.xml").write_bytes(example)
    (tmp_path / "filters.export").write_bytes(example)
    assert len(load_rules(tmp_path / "filters.xml").filters) == 2
    assert (
        load_rules(tmp_path / "filters.export").filters
        == load_rules(tmp_path / "filters.xml").filters
    )


def test_all_actions_and_criteria_keys() -> None:
    ruleset = read_rules(
        """
version: 1
mode: sequential
filters:
  - from: a
    to: b
    subject: c
    query: d
    negatedQuery: e
    hasAttachment: true
    excludeChats: true
    size: 2K
    sizeComparison: smaller
    actions: {archive: true, delete: true, markRead: true, star: true, markSpam: false,
              markImportant: false, category: forums, labels: x, forward: f@example.com}
""",
        "inline",
    )
    (rule,) = ruleset.filters
    assert ruleset.mode.value == "sequential"
    assert (rule.criteria.size, rule.criteria.size_comparison) == (2048, "smaller")
    assert rule.actions == Actions(
        archive=True,
        delete=True,
        mark_read=True,
        star=True,
        never_spam=True,
        important=False,
        category="forums",
        labels=("x",),
        forward=("f@example.com",),
    )


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("[1]", "'filters' list"),
        ("filters: [{from: a, colour: red}]", "filter 1: unknown keys: colour"),
        ("filters: [{from: a, actions: {markSpam: true}}]", "markSpam can only be false"),
        ("filters: [{from: a, actions: {category: misc}}]", "category must be one of"),
        ("filters: [{from: a, actions: {star: yes please}}]", "star must be true or false"),
        ("filters: [{actions: {star: true}}]", "at least one criterion"),
        ("filters: [{query: '(a'}]", "column 3"),
        ("filters: [{query: '${who}'}]", "${who} is not set"),
        ("mode: random\nfilters: []", "mode must be"),
    ],
)
def test_invalid_rules_name_the_filter_and_the_problem(text: str, problem: str) -> None:
    with pytest.raises(RuleFileError) as error:
        read_rules(text, "rules.yaml")
    assert problem in str(error.value)
    assert str(error.value).startswith("rules.yaml")
