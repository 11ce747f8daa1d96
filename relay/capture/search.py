"""Run a Gmail query over the capture index: SQL narrows it down, relay.gmail decides the rest.

Rows the index decides alone (see :mod:`relay.capture.sql`) cost nothing more; the others
are read from the Maildir and evaluated, within a time budget. Results are newest first.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

from relay.capture.entry import recipient_view, state_of, view_of
from relay.capture.index import CaptureIndex, Row
from relay.capture.meta import CaptureMeta
from relay.capture.sql import TRUE, Bounds, Scope, bounds
from relay.gmail import DEFAULT_TIMEZONE, MessageState, Node, matches, parse_query
from relay.gmail.words import fold

__all__ = ["Loader", "Page", "find", "find_ids"]

#: Reads a message for evaluation: (id, path) -> (raw bytes, metadata or None).
Loader = Callable[[str, str], tuple[bytes, CaptureMeta | None]]


@dataclass(frozen=True, slots=True, kw_only=True)
class Page:
    """One page of results.

    ``total`` counts every match when ``exact``; otherwise it is an upper bound (some rows
    were not checked in time). ``complete`` is False when the page itself may lack matches.
    """

    items: tuple[dict[str, Any], ...]
    total: int
    exact: bool = True
    complete: bool = True


def find(
    index: CaptureIndex,
    load: Loader,
    query: str,
    *,
    limit: int = 50,
    offset: int = 0,
    recipient: str | None = None,
    among: Sequence[str] | None = None,
    now: dt.datetime | None = None,
    timezone: str = DEFAULT_TIMEZONE,
    budget: float = 1.5,
) -> Page:
    """Return matches ``offset`` to ``offset + limit`` of ``query`` (empty: every message).

    ``recipient`` selects whose simulated Gmail state ``label: is: in:`` read (and whom
    ``me`` means) and restricts the list to their messages; ``among`` restricts it to
    those ids. Raises :class:`relay.gmail.QuerySyntaxError` for a malformed query.
    """
    where, scope, check = _prepare(index, load, query, recipient, now, timezone)
    upper, lower = index.counts(where, recipient=scope.recipient, among=among)
    deadline = time.monotonic() + budget
    found: list[Row] = []
    checked: set[int] = set()
    matched = 0
    complete = True
    for row in index.rows(where, recipient=scope.recipient, among=among):
        if len(found) >= offset + limit:
            break
        if not row.sure:
            if time.monotonic() > deadline:
                complete = False
                break
            checked.add(row.n)
            if not check(row):
                continue
            matched += 1
        found.append(row)
    if complete and upper - lower > len(checked):  # settle the total while time allows
        for row in index.rows(where, recipient=scope.recipient, among=among, maybe_only=True):
            if row.n in checked:
                continue
            if time.monotonic() > deadline:
                break
            checked.add(row.n)
            matched += check(row)
    unchecked = upper - lower - len(checked)
    return Page(
        items=tuple(_item(row, scope.recipient) for row in found[offset:]),
        total=lower + matched + unchecked,
        exact=unchecked == 0,
        complete=complete,
    )


def find_ids(
    index: CaptureIndex,
    load: Loader,
    query: str,
    *,
    recipient: str | None = None,
    timezone: str = DEFAULT_TIMEZONE,
) -> list[str]:
    """Every id matching ``query`` (no time budget), newest first."""
    where, scope, check = _prepare(index, load, query, recipient, None, timezone)
    rows = index.rows(where, recipient=scope.recipient)
    return [row.id for row in rows if row.sure or check(row)]


def _prepare(
    index: CaptureIndex,
    load: Loader,
    query: str,
    recipient: str | None,
    now: dt.datetime | None,
    timezone: str,
) -> tuple[Bounds, Scope, Callable[[Row], bool]]:
    node = parse_query(query) if query.strip() else None
    recipient = fold(recipient) if recipient else None
    states = {"": MessageState()}
    if recipient is not None:
        states = {key: state_of(key) for key in index.states(recipient)}
    scope = Scope(
        now=now or dt.datetime.now(dt.UTC),
        timezone=ZoneInfo(timezone),
        recipient=recipient,
        states=states,
    )
    where = bounds(node, scope) if node is not None else Bounds(TRUE, TRUE)
    return where, scope, _checker(node, scope, load)


def _checker(node: Node | None, scope: Scope, load: Loader) -> Callable[[Row], bool]:
    """Evaluate ``node`` on a row's message exactly as relay.gmail would."""

    def check(row: Row) -> bool:
        assert node is not None  # without a query every row is sure
        try:
            raw, meta = load(row.id, row.path)
        except FileNotFoundError:  # deleted meanwhile
            return False
        state = state_of(row.state) if scope.recipient else None
        view = view_of(raw, meta, recipient=scope.recipient, state=state)
        return matches(node, view, now=scope.now, timezone=scope.timezone)

    return check


def _item(row: Row, recipient: str | None) -> dict[str, Any]:
    item: dict[str, Any] = json.loads(row.item)
    if recipient is not None:
        item["view"] = recipient_view(recipient, row.state)
    return item
