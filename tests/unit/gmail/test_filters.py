"""Filter actions: union, conflicts, pure and sequential modes, warnings."""

from __future__ import annotations

from relay.gmail import (
    Actions,
    Criteria,
    MessageView,
    Mode,
    RuleSet,
    apply_filters,
    format_query,
    make_filter,
)
from relay.gmail.samples import message_bytes

VIEW = MessageView.from_bytes(
    message_bytes({"headers": {"From": "trac@example.org", "Subject": "Ticket"}, "body": "x"})
)


def _rules(*pairs: tuple[str, Actions], mode: Mode = Mode.PURE) -> RuleSet:
    filters = tuple(
        make_filter(Criteria(query=query), actions, f"f{n}")
        for n, (query, actions) in enumerate(pairs)
    )
    return RuleSet(filters, mode)


def test_all_matching_filters_fire_and_effects_are_unioned() -> None:
    result = apply_filters(
        _rules(
            ("from:trac", Actions(labels=("Trac",), archive=True)),
            ("subject:ticket", Actions(labels=("trac", "todo"), mark_read=True, star=True)),
            ("subject:other", Actions(delete=True)),
        ),
        VIEW,
    )
    assert result.matched == ((0, "f0"), (1, "f1"))
    assert result.labels == ("todo", "Trac")
    assert (result.archived, result.read, result.starred, result.trashed) == (
        True,
        True,
        True,
        False,
    )
    assert result.conflicts == ()


def test_conflicts_are_reported_and_the_last_filter_wins() -> None:
    result = apply_filters(
        _rules(
            ("from:trac", Actions(important=True, category="updates", forward=("a@x.org",))),
            ("ticket", Actions(important=False, category="forums", forward=("b@x.org",))),
        ),
        VIEW,
    )
    assert (result.important, result.category) == (False, "forums")
    assert result.forwarded_to == ("a@x.org", "b@x.org")
    assert [(c.action, c.values, c.filters, c.chosen) for c in result.conflicts] == [
        ("important", (True, False), (0, 1), False),
        ("category", ("updates", "forums"), (0, 1), "forums"),
        ("forward", ("a@x.org", "b@x.org"), (0, 1), "all"),
    ]
    assert len(result.warnings) == 3


def test_trash_does_not_stop_forwarding_but_warns() -> None:
    result = apply_filters(_rules(("ticket", Actions(delete=True, forward=("a@x.org",)))), VIEW)
    assert result.trashed and result.forwarded_to == ("a@x.org",)
    assert "deleted and forwarded" in result.warnings[0]


def test_personal_category_is_searched_as_primary() -> None:
    result = apply_filters(_rules(("ticket", Actions(category="personal"))), VIEW)
    assert result.category == "primary"


def test_state_operators_see_arrival_state_unless_sequential() -> None:
    pairs = (("ticket", Actions(star=True)), ("is:starred", Actions(labels=("starred",))))
    assert apply_filters(_rules(*pairs), VIEW).labels == ()
    assert apply_filters(_rules(*pairs, mode=Mode.SEQUENTIAL), VIEW).labels == ("starred",)
    catch_all = _rules(("has:nouserlabels", Actions(labels=("other",))))
    assert apply_filters(catch_all, VIEW).labels == ("other",)


def test_make_filter_warns_about_state_and_age_operators() -> None:
    rule = make_filter(
        Criteria(query="label:x newer_than:2d has:nouserlabels has:attachment dinner or pizza"),
        Actions(star=True),
    )
    assert any(w.startswith("label:x sees the arrival state") for w in rule.warnings)
    assert any(w.startswith("has:nouserlabels sees") for w in rule.warnings)
    assert not any(w.startswith("has:attachment") for w in rule.warnings)
    assert any("newer_than:" in w for w in rule.warnings)
    assert any("lower-case 'or'" in w for w in rule.warnings)


def test_criteria_become_one_query() -> None:
    rule = make_filter(
        Criteria(
            from_="a OR b",
            subject="{x y}",
            negated_query="foo bar",
            has_attachment=True,
            size=5 << 20,
        ),
        Actions(),
    )
    assert format_query(rule.node) == (
        "from:(a OR b) subject:(x OR y) -(foo OR bar) has:attachment larger:5242880"
    )


def test_result_to_dict_is_json_shaped() -> None:
    result = apply_filters(_rules(("ticket", Actions(labels=("a",), never_spam=True))), VIEW)
    assert result.to_dict() == {
        "matched": [{"index": 1, "name": "f0"}],
        "labels": ["a"],
        "archived": False,
        "in_inbox": True,
        "read": False,
        "starred": False,
        "important": False,
        "category": None,
        "trashed": False,
        "never_spam": True,
        "forwarded_to": [],
        "conflicts": [],
        "warnings": [],
    }
