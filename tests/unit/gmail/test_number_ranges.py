"""Numbers too large for any message, date or clock are query errors, not crashes."""

from __future__ import annotations

import datetime as dt

import pytest

from relay.gmail import MessageView, QuerySyntaxError, matches, parse_query

OUT_OF_RANGE = [
    ("larger:9999999999999999999999M", "a size up to"),
    ("smaller:99999999999999999999", "a size up to"),
    ("size:1e400", "a size such as"),
    ("newer_than:99999999999d", "an age up to"),
    ("older_than:99999y", "an age up to"),
    ("older_than:9999999999999m", "an age up to"),
    ("after:99999999999999999999", "a date up to"),
    ("before:253402300800", "a date up to"),
    ("subject:x (from:a OR larger:99999999999999999999G)", "a size up to"),
]


@pytest.mark.parametrize(("query", "expected"), OUT_OF_RANGE)
def test_out_of_range_numbers_are_syntax_errors_at_the_value(query, expected) -> None:
    column = query.rindex(":") + 2  # the value of the last field
    with pytest.raises(QuerySyntaxError) as raised:
        parse_query(query)
    assert raised.value.column == column and raised.value.expected.startswith(expected)


@pytest.mark.parametrize(
    "query", ["larger:1024G", "older_than:1000y", "newer_than:365000d", "before:253402300799"]
)
def test_the_largest_numbers_in_range_evaluate(query) -> None:
    arrival = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    view = MessageView.from_bytes(b"Subject: x\r\n\r\nbody\r\n", received_at=arrival)
    now = dt.datetime(2026, 6, 1, tzinfo=dt.UTC)
    assert isinstance(matches(parse_query(query), view, now=now), bool)
