"""mailFilters.xml: the spec's example, round trips, and errors."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from relay.gmail import (
    Actions,
    Criteria,
    RuleFileError,
    format_query,
    make_filter,
    parse_query,
    read_mailfilters,
    write_mailfilters,
)

EXAMPLE = Path(__file__).with_name("mailFilters-example.xml").read_bytes()
UPDATED = dt.datetime(2025, 6, 15, 12, tzinfo=dt.UTC)


def test_spec_example_imports_to_the_documented_queries_and_actions() -> None:
    seed, big = read_mailfilters(EXAMPLE)
    assert seed.node == parse_query(
        'from:(notifier@example.com) (("Reporter: jonas" -Changes) OR "Changes (by jonas)")'
    )
    assert seed.actions == Actions(
        archive=True, mark_read=True, never_spam=True, category="updates", labels=("trac/mine",)
    )
    assert format_query(big.node) == (
        "to:me@example.com -unsubscribe has:attachment larger:5242880"
    )
    assert big.criteria.size == 5 * 1024 * 1024
    assert big.actions == Actions(star=True, important=True, forward=("archive@example.com",))


def test_export_of_an_import_is_equivalent() -> None:
    imported = read_mailfilters(EXAMPLE)
    exported = write_mailfilters(imported, updated=UPDATED, author_email="me@example.com")
    again = read_mailfilters(exported)
    assert again == imported
    assert [f.node for f in again] == [f.node for f in imported]
    assert write_mailfilters(again, updated=UPDATED, author_email="me@example.com") == exported
    assert '<apps:property name="sizeUnit" value="s_smb" />' in exported
    assert "&quot;Reporter: jonas&quot;" in exported


def test_several_labels_become_one_entry_each() -> None:
    rule = make_filter(Criteria(from_="x"), Actions(labels=("a", "b"), star=True))
    (first, second) = read_mailfilters(write_mailfilters([rule], updated=UPDATED))
    assert first.actions == Actions(labels=("a",), star=True)
    assert second.actions == Actions(labels=("b",))
    assert first.criteria == second.criteria == rule.criteria


def test_several_label_properties_in_one_entry_are_all_applied() -> None:
    xml = EXAMPLE.replace(
        b'<apps:property name="label" value="trac/mine"/>',
        b'<apps:property name="label" value="trac/mine"/><apps:property name="label" value="b"/>',
    )
    assert read_mailfilters(xml)[0].actions.labels == ("trac/mine", "b")


@pytest.mark.parametrize(
    ("xml", "problem"),
    [
        (b"<feed", "not XML"),
        (b"<rss/>", "Atom <feed>"),
        (EXAMPLE.replace(b'value="s_sl"', b'value="s_xx"'), "sizeOperator is 's_xx'"),
        (EXAMPLE.replace(b"unsubscribe", b"(a"), "column 3"),
    ],
)
def test_invalid_files_raise_rule_file_errors(xml: bytes, problem: str) -> None:
    with pytest.raises(RuleFileError) as error:
        read_mailfilters(xml)
    assert problem in str(error.value)
