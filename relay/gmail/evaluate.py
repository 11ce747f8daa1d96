"""Syntax tree x message view -> match, and an explanation of every node (spec §3, §4.2)."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from functools import lru_cache
from typing import Any, NamedTuple
from zoneinfo import ZoneInfo

from relay.gmail.addresses import address_hits
from relay.gmail.ast import And, Around, Field, Node, Not, Or, Term
from relay.gmail.operators import (
    ADDRESS_OPERATORS,
    AGE_OPERATORS,
    DATE_OPERATORS,
    SIZE_OPERATORS,
    parse_age,
    parse_date,
    parse_size,
)
from relay.gmail.printer import format_query
from relay.gmail.terms import Hit, around_hits, compile_term, term_hits
from relay.gmail.view import MessageView
from relay.gmail.words import Text, fold

__all__ = ["DEFAULT_TIMEZONE", "explain", "label_key", "matcher", "matches"]

#: Calendar dates in after:/before: are midnight in this zone (the Gmail API's PST/PDT).
DEFAULT_TIMEZONE = "America/Los_Angeles"
_LINKS = {
    "drive": re.compile(r"drive\.google\.com/"),
    "document": re.compile(r"docs\.google\.com/document/"),
    "spreadsheet": re.compile(r"docs\.google\.com/spreadsheets/"),
    "presentation": re.compile(r"docs\.google\.com/presentation/"),
    "youtube": re.compile(r"(?:youtube\.com/watch|youtu\.be/)"),
}
_LABEL_SEPARATORS = re.compile(r"[\s/_-]+")


class _Verdict(NamedTuple):
    """A leaf's result: matched or not, where it matched, and a note for explanations."""

    matched: bool
    hits: tuple[Hit, ...] = ()
    detail: str = ""


class _Context(NamedTuple):
    view: MessageView
    now: dt.datetime | None
    zone: dt.tzinfo


def matches(
    node: Node,
    view: MessageView,
    *,
    now: dt.datetime | None = None,
    timezone: str | dt.tzinfo = DEFAULT_TIMEZONE,
) -> bool:
    """Return whether query ``node`` matches ``view``.

    ``now`` is the instant relative dates count from; None means "at arrival", as a filter
    sees it (``newer_than:`` true, ``older_than:`` false). ``timezone`` gives calendar dates.
    """
    return matcher(view, now=now, timezone=timezone)(node)


def matcher(
    view: MessageView,
    *,
    now: dt.datetime | None = None,
    timezone: str | dt.tzinfo = DEFAULT_TIMEZONE,
) -> Callable[[Node], bool]:
    """Return ``matches`` for many queries on one view (the context is prepared once)."""
    context = _context(view, now, timezone)
    return lambda node: _evaluate(node, context, None)


def explain(
    node: Node,
    view: MessageView,
    *,
    now: dt.datetime | None = None,
    timezone: str | dt.tzinfo = DEFAULT_TIMEZONE,
) -> dict[str, Any]:
    """Return the value of every node of ``node`` for ``view`` as a JSON-able tree.

    Each entry has ``query`` (the sub-expression), ``matched``, and either ``children`` or,
    for a leaf, ``field``, ``where`` (field and line of each match) and maybe ``detail``.
    """
    return _explain(node, _context(view, now, timezone), None)


@lru_cache(maxsize=4096)
def label_key(name: str) -> str:
    """Return how label names compare: case-folded, with ``/``, spaces, ``_`` and ``-`` alike."""
    return _LABEL_SEPARATORS.sub("-", fold(name).strip())


def _context(view: MessageView, now: dt.datetime | None, timezone: str | dt.tzinfo) -> _Context:
    return _Context(view, now, _zone(timezone) if isinstance(timezone, str) else timezone)


@lru_cache(maxsize=64)
def _zone(name: str) -> dt.tzinfo:
    return ZoneInfo(name)


def _evaluate(node: Node, context: _Context, field: str | None) -> bool:
    """The fast path: short-circuits and records nothing."""
    # Loops, not all()/any() over a generator: this is the hot path of every filter.
    if isinstance(node, And):
        for operand in node.operands:  # noqa: SIM110
            if not _evaluate(operand, context, field):
                return False
        return True
    if isinstance(node, Or):
        for operand in node.operands:  # noqa: SIM110
            if _evaluate(operand, context, field):
                return True
        return False
    if isinstance(node, Not):
        return not _evaluate(node.operand, context, field)
    if isinstance(node, Field):
        return _evaluate(node.value, context, node.name)
    return _leaf(node, context, field).matched


def _explain(node: Node, context: _Context, field: str | None) -> dict[str, Any]:
    query = format_query(node if field is None else Field(field, node))
    if isinstance(node, Field) and not isinstance(node.value, Term | Around):
        child = _explain(node.value, context, node.name)
        return {"query": query, "matched": child["matched"], "children": [child]}
    if isinstance(node, Field):
        return _explain(node.value, context, node.name)
    if isinstance(node, And | Or | Not):
        operands = (node.operand,) if isinstance(node, Not) else node.operands
        children = [_explain(operand, context, field) for operand in operands]
        values = [child["matched"] for child in children]
        matched = (
            not values[0]
            if isinstance(node, Not)
            else (all(values) if isinstance(node, And) else any(values))
        )
        return {"query": query, "matched": matched, "children": children}
    verdict = _leaf(node, context, field)
    entry: dict[str, Any] = {
        "query": query,
        "matched": verdict.matched,
        "field": field or "anywhere",
        "where": [hit.to_dict() for hit in verdict.hits],
    }
    if verdict.detail:
        entry["detail"] = verdict.detail
    return entry


def _leaf(node: Term | Around, context: _Context, field: str | None) -> _Verdict:
    view = context.view
    if isinstance(node, Around):
        return _found(around_hits(node, _texts(view, field)))
    if field in ADDRESS_OPERATORS:
        return _found(address_hits(field, node, view))
    if field is None or field in ("subject", "filename"):
        return _found(term_hits(compile_term(node), _texts(view, field)))
    value = node.text.strip()
    if field in SIZE_OPERATORS:
        limit = parse_size(value)
        smaller = field == "smaller"
        matched = view.size < limit if smaller else view.size > limit
        return _Verdict(matched, detail=f"size {view.size} {'<' if smaller else '>'} {limit}")
    if field in DATE_OPERATORS:
        return _date_verdict(field, value, context)
    if field in AGE_OPERATORS:
        return _age_verdict(field, value, context)
    if field == "rfc822msgid":
        matched = fold(value.strip("<>")) == view.message_id
        return _Verdict(matched, detail=f"Message-ID {view.message_id or '(none)'}")
    return _state_verdict(field, value.lower(), view)


def _found(hits: list[Hit]) -> _Verdict:
    return _Verdict(bool(hits), tuple(hits))


def _texts(view: MessageView, field: str | None) -> tuple[Text, ...]:
    if field is None:
        return view.searchable
    if field == "subject":
        return (view.subject,)
    if field == "filename":
        return view.filenames
    if field in ADDRESS_OPERATORS:
        return tuple(t for m in view.mailboxes[field] for t in (m.name, m.address))
    return ()


def _date_verdict(field: str, value: str, context: _Context) -> _Verdict:
    when = context.view.arrival
    parsed = parse_date(value)
    if isinstance(parsed, int):
        bound = dt.datetime.fromtimestamp(parsed, dt.UTC)
    else:
        bound = dt.datetime.combine(parsed, dt.time(), context.zone)
    if when is None:
        return _Verdict(False, detail="no arrival time")
    matched = when >= bound if field == "after" else when < bound
    return _Verdict(matched, detail=f"arrived {when.isoformat()}, bound {bound.isoformat()}")


def _age_verdict(field: str, value: str, context: _Context) -> _Verdict:
    when = context.view.arrival
    if when is None:
        return _Verdict(False, detail="no arrival time")
    now = context.now or when
    count, unit = parse_age(value)
    bound = _subtract(now.astimezone(context.zone), count, unit)
    matched = when > bound if field == "newer_than" else when < bound
    return _Verdict(matched, detail=f"arrived {when.isoformat()}, bound {bound.isoformat()}")


def _subtract(now: dt.datetime, count: int, unit: str) -> dt.datetime:
    """Return ``now`` minus ``count`` days, calendar months or calendar years."""
    if unit == "d":
        return now - dt.timedelta(days=count)
    months = now.year * 12 + now.month - 1 - (count if unit == "m" else 12 * count)
    year, month = divmod(months, 12)
    for day in range(now.day, 0, -1):
        try:
            return now.replace(year=year, month=month + 1, day=day)
        except ValueError:
            continue
    raise AssertionError("unreachable: day 1 exists in every month")


def _state_verdict(field: str, value: str, view: MessageView) -> _Verdict:
    state = view.state
    if field == "label":
        keys = {label_key(label) for label in state.labels}
        return _Verdict(label_key(value) in keys, detail=f"labels {sorted(state.labels)}")
    if field == "category":
        return _Verdict(state.category == value, detail=f"category {state.category}")
    if field == "has" and value in _LINKS:
        return _Verdict(_LINKS[value].search(view.body.text) is not None)
    flags = {
        ("has", "attachment"): bool(view.attachments),
        ("has", "userlabels"): bool(state.labels),
        ("has", "nouserlabels"): not state.labels,
        ("has", "yellow-star"): state.starred,
        ("is", "important"): state.important,
        ("is", "starred"): state.starred,
        ("is", "unread"): state.unread,
        ("is", "read"): not state.unread,
        ("is", "snoozed"): state.snoozed,
        ("is", "muted"): state.muted,
        ("in", "inbox"): state.in_inbox and not (state.trashed or state.spam),
        ("in", "trash"): state.trashed,
        ("in", "spam"): state.spam,
        ("in", "sent"): state.sent,
        ("in", "snoozed"): state.snoozed,
        ("in", "anywhere"): True,
    }
    return _Verdict(flags.get((field, value), False))
