"""YAML rule files (and mailFilters.xml by extension or content) <-> rule sets.

A rules file::

    version: 1
    mode: pure                      # or sequential (spec §4.2)
    params: {username: dave}        # ${username} in any string below
    filters:
      - name: my-own-changes
        from: trac@example.org      # criteria: from to subject query negatedQuery
        query: '"Changes (by ${username})"'   # hasAttachment excludeChats size sizeComparison
        actions: {delete: true}     # archive delete markRead star markSpam(false)
                                    # markImportant category labels forward
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from relay.gmail.errors import RuleFileError
from relay.gmail.filters import CATEGORIES, Actions, Criteria, Filter, Mode, RuleSet, make_filter
from relay.gmail.mailfilters import read_mailfilters
from relay.gmail.operators import parse_size

__all__ = [
    "actions_from_yaml",
    "actions_to_yaml",
    "dump_rules",
    "load_rules",
    "read_rules",
]

_PARAM = re.compile(r"\$\{(\w+)\}")
_CRITERIA = {
    "from": "from_",
    "to": "to",
    "subject": "subject",
    "query": "query",
    "negatedQuery": "negated_query",
}
_CRITERIA_FLAGS = {"hasAttachment": "has_attachment", "excludeChats": "exclude_chats"}
_ACTION_FLAGS = {"archive": "archive", "delete": "delete", "markRead": "mark_read", "star": "star"}
_FILTER_KEYS = {*_CRITERIA, *_CRITERIA_FLAGS, "name", "size", "sizeComparison", "actions"}


def load_rules(path: str | Path, *, params: Mapping[str, str] | None = None) -> RuleSet:
    """Load a YAML rules file or a mailFilters.xml (by extension, else by content).

    ``params`` override the file's ``params``. Raise RuleFileError if the file is invalid.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise RuleFileError(str(path), exc.strerror or "cannot read") from None
    if path.suffix.lower() == ".xml" or (
        path.suffix.lower() not in (".yaml", ".yml") and text.lstrip().startswith("<")
    ):
        filters = read_mailfilters(text.encode("utf-8"), str(path))
        return RuleSet(filters, warnings=_warnings(filters))
    return read_rules(text, str(path), params=params)


def read_rules(text: str, where: str, *, params: Mapping[str, str] | None = None) -> RuleSet:
    """Return the rule set of YAML ``text`` (``where`` names it in errors)."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise RuleFileError(where, f"not YAML: {exc}") from None
    if not isinstance(data, dict) or not isinstance(data.get("filters"), list):
        raise RuleFileError(where, "expected a mapping with a 'filters' list")
    values = {**(data.get("params") or {}), **(params or {})}
    try:
        mode = Mode(data.get("mode", "pure"))
    except ValueError:
        raise RuleFileError(where, "mode must be pure or sequential") from None
    filters = []
    for number, entry in enumerate(data["filters"], start=1):
        place = f"{where}: filter {number}"
        try:
            filters.append(_filter(_substitute(entry, values)))
        except (ValueError, TypeError) as exc:
            raise RuleFileError(place, str(exc)) from None
    return RuleSet(tuple(filters), mode, _warnings(filters))


def dump_rules(ruleset: RuleSet) -> str:
    """Return YAML text for ``ruleset`` that :func:`read_rules` reads back to the same filters."""
    filters = []
    for rule in ruleset.filters:
        entry: dict[str, Any] = {"name": rule.name} if rule.name else {}
        criteria = rule.criteria
        entry |= {
            key: getattr(criteria, attr)
            for key, attr in _CRITERIA.items()
            if getattr(criteria, attr)
        }
        entry |= {key: True for key, attr in _CRITERIA_FLAGS.items() if getattr(criteria, attr)}
        if criteria.size is not None:
            entry |= {"size": criteria.size, "sizeComparison": criteria.size_comparison}
        entry["actions"] = actions_to_yaml(rule.actions)
        filters.append(entry)
    data = {"version": 1, "mode": ruleset.mode.value, "filters": filters}
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=100)


def actions_from_yaml(data: object) -> Actions:
    """Return the actions of a YAML ``actions`` mapping; raise ValueError if it is invalid."""
    if not isinstance(data, dict):
        raise ValueError("actions must be a mapping")
    unknown = set(data) - {
        *_ACTION_FLAGS,
        "markSpam",
        "markImportant",
        "category",
        "labels",
        "forward",
    }
    if unknown:
        raise ValueError(f"unknown actions: {', '.join(sorted(unknown))}")
    if data.get("markSpam", False) is not False:
        raise ValueError("markSpam can only be false (Gmail filters cannot send to spam)")
    category = data.get("category")
    if category is not None and category not in CATEGORIES:
        raise ValueError(f"category must be one of {', '.join(CATEGORIES)}")
    labels = data.get("labels", ())
    forward = data.get("forward", ())
    return Actions(
        **{attr: _flag(data, key) for key, attr in _ACTION_FLAGS.items()},
        never_spam="markSpam" in data,
        important=data.get("markImportant"),
        category=category,
        labels=tuple(map(str, [labels] if isinstance(labels, str) else labels)),
        forward=tuple(map(str, [forward] if isinstance(forward, str) else forward)),
    )


def actions_to_yaml(actions: Actions) -> dict[str, Any]:
    """Return the YAML mapping of ``actions`` (only what is set)."""
    data: dict[str, Any] = {
        key: True for key, attr in _ACTION_FLAGS.items() if getattr(actions, attr)
    }
    if actions.never_spam:
        data["markSpam"] = False
    if actions.important is not None:
        data["markImportant"] = actions.important
    if actions.category:
        data["category"] = actions.category
    if actions.labels:
        data["labels"] = list(actions.labels)
    if actions.forward:
        data["forward"] = actions.forward[0] if len(actions.forward) == 1 else list(actions.forward)
    return data


def _filter(entry: object) -> Filter:
    if not isinstance(entry, dict):
        raise ValueError("a filter must be a mapping")
    unknown = set(entry) - _FILTER_KEYS
    if unknown:
        raise ValueError(f"unknown keys: {', '.join(sorted(unknown))}")
    size = entry.get("size")
    comparison = entry.get("sizeComparison", "larger")
    if comparison not in ("larger", "smaller"):
        raise ValueError("sizeComparison must be larger or smaller")
    given: dict[str, Any] = {
        **{attr: str(entry[key]) for key, attr in _CRITERIA.items() if key in entry},
        **{attr: _flag(entry, key) for key, attr in _CRITERIA_FLAGS.items()},
    }
    criteria = Criteria(
        **given,
        size=None if size is None else parse_size(str(size)),
        size_comparison=comparison,
    )
    return make_filter(
        criteria, actions_from_yaml(entry.get("actions", {})), str(entry.get("name", ""))
    )


def _flag(data: Mapping[str, Any], key: str) -> bool:
    value = data.get(key, False)
    if not isinstance(value, bool):
        raise ValueError(f"{key} must be true or false")
    return value


def _substitute(value: Any, params: Mapping[str, Any]) -> Any:
    """Replace ``${name}`` in every string of ``value`` by ``params[name]``."""
    if isinstance(value, str):

        def lookup(match: re.Match[str]) -> str:
            if match[1] not in params:
                raise ValueError(f"${{{match[1]}}} is not set (add it to params)")
            return str(params[match[1]])

        return _PARAM.sub(lookup, value)
    if isinstance(value, list):
        return [_substitute(item, params) for item in value]
    if isinstance(value, dict):
        return {key: _substitute(item, params) for key, item in value.items()}
    return value


def _warnings(filters: tuple[Filter, ...] | list[Filter]) -> tuple[str, ...]:
    return tuple(
        f"filter {number}{f' ({rule.name})' if rule.name else ''}: {warning}"
        for number, rule in enumerate(filters, start=1)
        for warning in rule.warnings
    )
