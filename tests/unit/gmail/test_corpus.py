"""The shared Gmail case corpus, and our own cases for the points the spec leaves open."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from relay.gmail import QuerySyntaxError, matches, parse_query
from relay.gmail.mailfilters import filter_from_properties
from relay.gmail.samples import parse_instant, sample_view

CORPUS = Path(__file__).parents[2] / "fixtures" / "gmail-cases.yaml"
DECISIONS = Path(__file__).with_name("decisions.yaml")


def _load(path: Path) -> dict[str, Any]:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def _params(path: Path) -> list[Any]:
    data = _load(path)
    return [pytest.param(data, case, id=case["id"]) for case in data["cases"]]


def _evaluate(data: dict[str, Any], case: dict[str, Any]) -> bool:
    defaults = data["defaults"]
    view = sample_view(
        data["messages"][case["message"]],
        where=case["id"],
        user_addresses=defaults["user_addresses"],
    )
    if "criteria" in case:
        node = filter_from_properties(list(case["criteria"].items())).node
    else:
        node = parse_query(case["query"])
    search = case.get("context", defaults["context"]) == "search"
    now = parse_instant(defaults["now"], "now") if search else None
    return matches(node, view, now=now, timezone=defaults["timezone"])


def test_corpus_has_every_case() -> None:
    assert len(_load(CORPUS)["cases"]) == 105


@pytest.mark.parametrize(("data", "case"), _params(CORPUS))
def test_shared_corpus_case(data: dict[str, Any], case: dict[str, Any]) -> None:
    assert _evaluate(data, case) is case["expected"], case["why"]


@pytest.mark.parametrize(("data", "case"), _params(DECISIONS))
def test_decision_case(data: dict[str, Any], case: dict[str, Any]) -> None:
    if "error_column" in case:
        with pytest.raises(QuerySyntaxError) as error:
            parse_query(case["query"])
        assert error.value.column == case["error_column"], case["why"]
    else:
        assert _evaluate(data, case) is case["expected"], case["why"]
