"""Lexer, parser and printer: trees, errors with columns, warnings, and the round trip."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from relay.gmail import (
    And,
    Around,
    Field,
    Node,
    Not,
    Or,
    QuerySyntaxError,
    Term,
    format_query,
    parse,
    parse_query,
)

SEED = 'from:(notifier@example.com) (("Reporter: jonas" -Changes) OR "Changes (by jonas)")'


def test_seed_query_tree() -> None:
    assert parse_query(SEED) == And(
        (
            Field("from", Term("notifier@example.com")),
            Or(
                (
                    And((Term("Reporter: jonas", quoted=True), Not(Term("Changes")))),
                    Term("Changes (by jonas)", quoted=True),
                )
            ),
        )
    )


def test_or_binds_tighter_than_implicit_and() -> None:
    assert parse_query("a b OR c") == And((Term("a"), Or((Term("b"), Term("c")))))


def test_braces_are_or_and_explicit_and_is_juxtaposition() -> None:
    assert parse_query("{a b c}") == Or((Term("a"), Term("b"), Term("c")))
    assert parse_query("a AND b") == parse_query("a b")


def test_operator_names_fold_case_and_aliases_resolve() -> None:
    assert parse_query("Subject:x") == Field("subject", Term("x"))
    assert parse_query("newer:2025/01/01 older:2025/02/01") == And(
        (Field("after", Term("2025/01/01")), Field("before", Term("2025/02/01")))
    )


def test_operator_value_may_be_a_group() -> None:
    assert parse_query("subject:(a -b)") == Field("subject", And((Term("a"), Not(Term("b")))))
    assert parse_query("from:{a b}") == Field("from", Or((Term("a"), Term("b"))))


def test_around_unquoted_quoted_and_default_distance() -> None:
    assert parse_query("a AROUND 3 b") == Around(Term("a"), Term("b"), 3)
    assert parse_query("a AROUND b") == Around(Term("a"), Term("b"), 5)
    assert parse_query('"a AROUND 2 b"') == Around(
        Term("a", quoted=True), Term("b", quoted=True), 2, ordered=True
    )


def test_exact_word_and_bang_negation() -> None:
    result = parse("+movie !pizza")
    assert result.node == And((Term("movie", exact=True), Not(Term("pizza"))))
    assert [w.column for w in result.warnings] == [8]


def test_lower_case_or_is_a_word_with_a_warning() -> None:
    result = parse("dinner or pizza")
    assert result.node == And((Term("dinner"), Term("or"), Term("pizza")))
    assert "OR" in result.warnings[0].message


def test_unknown_operator_is_text_with_a_warning() -> None:
    result = parse("xyz:dinner")
    assert result.node == Term("xyz:dinner")
    assert "unknown operator" in result.warnings[0].message


def test_plus_without_at_warns() -> None:
    assert parse("to:me+zzz").warnings[0].column == 4
    assert parse("to:me+zzz@example.com").warnings == ()


@pytest.mark.parametrize(
    ("query", "column", "expected"),
    [
        ("", 1, "a search term"),
        ("(a", 3, "')' to close the '(' at column 1"),
        ("a)", 2, "unmatched ')'"),
        ("{a", 3, "'}' to close the '{' at column 1"),
        ("()", 2, "inside '( )'"),
        ("{}", 1, "inside '{ }'"),
        ('a "bc', 6, "close the phrase opened at column 3"),
        ("a OR", 5, "after OR"),
        ("a AND", 6, "after AND"),
        ("AND a", 1, "before AND"),
        ("from:", 6, "a value right after 'from:'"),
        ("larger:10Q", 8, "a size"),
        ("after:2025/13/01", 7, "a date"),
        ("is:purple", 4, "one of important"),
        ("a AROUND 2", 11, "a search term"),
        ("(a b) AROUND 2 c", 1, "a word or phrase before AROUND"),
        ("+(a)", 2, "a word after '+'"),
    ],
)
def test_syntax_errors_point_at_the_column(query: str, column: int, expected: str) -> None:
    with pytest.raises(QuerySyntaxError) as error:
        parse_query(query)
    assert error.value.column == column
    assert expected in error.value.expected
    assert error.value.caret().splitlines()[1] == " " * (column - 1) + "^"
    assert f"column {column}" in str(error.value)


def test_printer_parenthesises_nested_groups() -> None:
    assert format_query(parse_query(SEED)) == (
        'from:notifier@example.com (("Reporter: jonas" -Changes) OR "Changes (by jonas)")'
    )
    assert format_query(parse_query("subject:(a OR b) -(c d)")) == "subject:(a OR b) -(c d)"


# ---- the round trip: parse -> print -> parse gives the same tree ---------------------------

_WORDS = st.sampled_from(
    [
        "dinner",
        "PROJ-42",
        "example.com",
        "a@b.org",
        "foo+bar",
        "1.2047",
        "Größe",
        "or",
        "x_y",
        "#123",
        "[tag]",
        "10M",
        "c:d",
    ]
)
_PHRASES = st.sampled_from(["Changes (by jonas)", "Reporter: jonas", "a b c", "AND", "OR x"])
_TERMS = st.one_of(
    _WORDS.map(Term),
    _PHRASES.map(lambda text: Term(text, quoted=True)),
    _WORDS.filter(lambda w: w[0].isalnum()).map(lambda text: Term(text, exact=True)),
)
_TEXT_FIELDS = st.sampled_from(["from", "to", "subject", "list", "filename", "deliveredto"])
_TYPED = st.sampled_from(
    [
        Field("larger", Term("10M")),
        Field("after", Term("2025/06/01")),
        Field("is", Term("unread")),
        Field("has", Term("attachment")),
        Field("newer_than", Term("2d")),
        Field("label", Term("x/y")),
    ]
)
_AROUND = st.builds(
    Around, _WORDS.map(Term), _WORDS.map(Term), st.integers(0, 20), st.just(False)
) | st.builds(
    lambda a, b, n: Around(Term(a, quoted=True), Term(b, quoted=True), n, ordered=True),
    st.sampled_from(["x", "y z"]),
    st.sampled_from(["w", "v u"]),
    st.integers(0, 20),
)


def _combine(children: st.SearchStrategy[Node]) -> st.SearchStrategy[Node]:
    many = st.lists(children, min_size=2, max_size=4).map(tuple)
    return st.one_of(
        many.map(And),
        many.map(Or),
        children.map(Not),
        st.builds(Field, _TEXT_FIELDS, children),
    )


_NODES = st.recursive(
    st.one_of(_TERMS, _AROUND, _TYPED, st.builds(Field, _TEXT_FIELDS, _TERMS)),
    _combine,
    max_leaves=12,
)


@settings(max_examples=300, deadline=None)
@given(_NODES)
def test_print_then_parse_gives_the_same_tree(node: Node) -> None:
    assert parse_query(format_query(node)) == node


_SNIPPETS = st.sampled_from(
    [
        "a",
        "b",
        "OR",
        "AND",
        "AROUND",
        "3",
        "-",
        "+",
        "!",
        "(",
        ")",
        "{",
        "}",
        '"x y"',
        "from:",
        "subject:",
        "larger:1K",
        "or",
        " ",
        "  ",
        "-c",
        "to:(",
        "é",
        "#",
        '"a AROUND 2 b"',
    ]
)


@settings(max_examples=500, deadline=None)
@given(st.lists(_SNIPPETS, max_size=12).map("".join))
def test_any_text_either_fails_cleanly_or_round_trips(text: str) -> None:
    try:
        node = parse_query(text)
    except QuerySyntaxError as error:
        assert 1 <= error.column <= len(text) + 1  # noqa: PT017 - any text: error or parse
        return
    assert parse_query(format_query(node)) == node
