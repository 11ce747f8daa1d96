"""Matching details beyond the corpus, and explanations."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from relay.gmail import MessageView, explain, matches, parse_query
from relay.gmail.samples import message_bytes

SEED_DAVE = 'from:(trac@trac.example.org) (("Reporter: dave" -Changes) OR "Changes (by dave)")'


def _view(**spec: object) -> MessageView:
    return MessageView.from_bytes(message_bytes(spec))


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("from:(trac@trac.example.org)", True),
        ("from:acceptance", True),
        ("from:@example.org", True),
        ("from:*@trac.example.org", True),
        ("from:@example", False),
        ('"Reporter: alice"', True),
        ('"Changes (by dave)"', True),
        ('"Changes (by alice)"', False),
        ("subject:(re acceptance) subject:#1", True),
        ('"priority major minor"', True),
        ("comment AROUND 5 looked", True),
        ("looked AROUND 4 comment", False),
        ('"looked AROUND 9 comment"', False),
        ("rfc822msgid:<069.6dad696b7e5930b2c732c7900edf3701@trac.example.org>", True),
        ("larger:1400 smaller:1500", True),
        ("has:attachment", False),
    ],
)
def test_real_trac_change_message(trac_view, query: str, expected: bool) -> None:
    view = trac_view("new-and-change/0002")
    assert matches(parse_query(query), view) is expected


def test_relative_dates_count_from_now_in_search_and_from_arrival_in_filters(trac_view) -> None:
    view = trac_view("new-and-change/0002")  # Date: 2026-11-21 07:31:12 UTC, no Received
    later = dt.datetime(2026, 12, 25, tzinfo=dt.UTC)
    assert matches(parse_query("older_than:1m"), view, now=later)
    assert not matches(parse_query("older_than:2m"), view, now=later)
    assert matches(parse_query("newer_than:1y -older_than:1d"), view)


def test_after_before_use_midnight_in_the_given_zone(trac_view) -> None:
    view = trac_view("new-and-change/0002")  # 07:31 UTC = 23:31 on Nov 20 in Los Angeles
    assert matches(parse_query("before:2026/11/21"), view)
    assert not matches(parse_query("before:2026/11/21"), view, timezone="UTC")
    assert matches(parse_query("after:1795000000"), view)


def test_state_operators_read_the_view_state() -> None:
    view = _view(body="x")
    assert matches(parse_query("is:unread in:inbox has:nouserlabels -is:starred"), view)
    assert not matches(parse_query("category:primary OR in:sent OR label:x"), view)


def test_explain_reports_every_node_and_the_matching_text(trac_view) -> None:
    tree = explain(parse_query(SEED_DAVE), trac_view("new-and-change/0002"))
    assert json.loads(json.dumps(tree)) == tree
    assert tree["matched"] is True
    sender, branches = tree["children"]
    assert sender == {
        "query": "from:trac@trac.example.org",
        "matched": True,
        "field": "from",
        "where": [{"field": "from", "text": "trac@trac.example.org"}],
    }
    reporter_branch, changes = branches["children"]
    assert reporter_branch["matched"] is False
    negation = reporter_branch["children"][1]
    assert negation["query"] == "-Changes"
    assert negation["children"][0]["where"] == [{"field": "body", "text": "Changes (by dave@…):"}]
    assert changes["where"] == [{"field": "body", "text": "Changes (by dave@…):"}]


def test_explain_gives_details_for_sizes_and_dates(trac_view) -> None:
    tree = explain(parse_query("larger:1K"), trac_view("new-and-change/0002"))
    assert tree["detail"] == "size 1462 > 1024"
