"""Filter tests in YAML, gmailctl-style but for every operator (raw queries, dates, sizes...).

A test file::

    version: 1
    rules: trac-own-changes.yaml        # relative to this file
    params: {username: dave}            # override the rules' params (optional)
    timezone: America/Los_Angeles       # optional; user_addresses: [...] means `me`
    messages:                           # named messages, reusable by tests
      change: {eml: ../tests/fixtures/trac/new-and-change/0002.eml}
    tests:
      - name: my change is deleted
        messages: [change]              # names or inline descriptions; or `message:`
        actions: {delete: true}         # exactly the merged actions ({} = none)
        matched: [my-own-changes]       # optional: the filters that fired
      - name: a raw query
        message: change
        query: 'newer_than:2d'          # optional `now:`; default: at arrival
        match: true
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from relay.gmail.errors import RuleFileError
from relay.gmail.evaluate import DEFAULT_TIMEZONE, matches
from relay.gmail.filters import Actions, RuleSet, apply_filters
from relay.gmail.parser import parse_query
from relay.gmail.rules import actions_from_yaml, actions_to_yaml, load_rules
from relay.gmail.samples import parse_instant, sample_view
from relay.gmail.view import MessageView

__all__ = ["CheckOutcome", "CheckReport", "run_checks"]

_TEST_KEYS = frozenset(
    {"name", "message", "messages", "params", "actions", "matched", "query", "now", "match"}
)


@dataclass(frozen=True, slots=True)
class CheckOutcome:
    """One test: its name and, if it failed, what differed."""

    name: str
    problems: tuple[str, ...]

    @property
    def passed(self) -> bool:
        """No problem was found."""
        return not self.problems


@dataclass(frozen=True, slots=True)
class CheckReport:
    """The outcomes of a test file, in order."""

    outcomes: tuple[CheckOutcome, ...]

    @property
    def passed(self) -> int:
        """How many tests passed."""
        return sum(outcome.passed for outcome in self.outcomes)

    @property
    def failed(self) -> int:
        """How many tests failed."""
        return len(self.outcomes) - self.passed


@dataclass(frozen=True, slots=True)
class _Suite:
    where: str
    base: Path
    data: Mapping[str, Any]
    timezone: str
    user_addresses: tuple[str, ...]


def run_checks(path: str | Path) -> CheckReport:
    """Run the tests of YAML file ``path``; raise RuleFileError if the file is invalid."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise RuleFileError(str(path), f"cannot read the tests: {exc}") from None
    if not isinstance(data, dict) or not isinstance(data.get("tests"), list):
        raise RuleFileError(str(path), "expected a mapping with a 'tests' list")
    suite = _Suite(
        str(path),
        path.parent,
        data,
        str(data.get("timezone", DEFAULT_TIMEZONE)),
        tuple(data.get("user_addresses", ())),
    )
    return CheckReport(
        tuple(_run(suite, number, test) for number, test in enumerate(data["tests"], 1))
    )


def _run(suite: _Suite, number: int, test: object) -> CheckOutcome:
    where = f"{suite.where}: test {number}"
    if not isinstance(test, dict):
        raise RuleFileError(where, "a test must be a mapping")
    unknown = set(test) - _TEST_KEYS
    if unknown:
        raise RuleFileError(where, f"unknown keys: {', '.join(sorted(unknown))}")
    name = str(test.get("name", f"test {number}"))
    problems = []
    for label, view in _views(suite, test, where):
        if "query" in test:
            problems += _check_query(suite, test, view, label, where)
        else:
            problems += _check_rules(_ruleset(suite, test, where), suite, test, view, label, where)
    return CheckOutcome(name, tuple(problems))


def _views(suite: _Suite, test: Mapping[str, Any], where: str) -> list[tuple[str, MessageView]]:
    entries = test.get("messages", [test["message"]] if "message" in test else [])
    if not entries:
        raise RuleFileError(where, "a test needs 'message' or 'messages'")
    named = suite.data.get("messages") or {}
    views = []
    for entry in entries:
        if isinstance(entry, str) and entry not in named:
            raise RuleFileError(where, f"no message named {entry!r}")
        spec = named[entry] if isinstance(entry, str) else entry
        label = entry if isinstance(entry, str) else str(spec.get("eml", "inline message"))
        views.append(
            (
                label,
                sample_view(
                    spec,
                    where=f"{where}: {label}",
                    base=suite.base,
                    user_addresses=suite.user_addresses,
                ),
            )
        )
    return views


def _ruleset(suite: _Suite, test: Mapping[str, Any], where: str) -> RuleSet:
    if "rules" not in suite.data:
        raise RuleFileError(where, "a filter test needs 'rules' at the top of the file")
    params = {**(suite.data.get("params") or {}), **(test.get("params") or {})}
    return load_rules(suite.base / str(suite.data["rules"]), params=params)


def _check_query(
    suite: _Suite, test: Mapping[str, Any], view: MessageView, label: str, where: str
) -> list[str]:
    if not isinstance(test.get("match"), bool):
        raise RuleFileError(where, "a query test needs 'match: true' or 'match: false'")
    now = parse_instant(test["now"], where) if "now" in test else None
    got = matches(parse_query(str(test["query"])), view, now=now, timezone=suite.timezone)
    if got == test["match"]:
        return []
    return [f"{label}: expected the query {'to match' if test['match'] else 'not to match'}"]


def _check_rules(
    ruleset: RuleSet,
    suite: _Suite,
    test: Mapping[str, Any],
    view: MessageView,
    label: str,
    where: str,
) -> list[str]:
    if "actions" not in test and "matched" not in test:
        raise RuleFileError(where, "a filter test needs 'actions' and/or 'matched'")
    result = apply_filters(ruleset, view, timezone=suite.timezone)
    problems = []
    if "actions" in test:
        try:
            expected = actions_from_yaml(test["actions"] or {})
        except ValueError as exc:
            raise RuleFileError(where, str(exc)) from None
        if _normal(expected) != _normal(result.actions):
            problems.append(
                f"{label}: expected actions {actions_to_yaml(expected)}, "
                f"got {actions_to_yaml(result.actions)}"
            )
    if "matched" in test:
        names = [name or str(index + 1) for index, name in result.matched]
        if [str(name) for name in test["matched"] or []] != names:
            problems.append(f"{label}: expected filters {test['matched']} to match, got {names}")
    return problems


def _normal(actions: Actions) -> Actions:
    """Labels and forward targets compare as sets."""
    return dataclasses.replace(
        actions,
        labels=tuple(sorted(label.casefold() for label in actions.labels)),
        forward=tuple(sorted(address.casefold() for address in actions.forward)),
    )
