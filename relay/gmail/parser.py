"""Tokens -> syntax tree; one function per grammar rule of spec §2.1.

Grammar (``OR`` binds tighter than the implicit ``AND``)::

    query    := and_expr END
    and_expr := or_expr ( ['AND'] or_expr )*
    or_expr  := unary ( 'OR' unary )*
    unary    := '-' unary | around
    around   := primary [ 'AROUND' [NUMBER] primary ]
    primary  := '(' and_expr ')' | '{' or_expr* '}' | field | term
    field    := OPERATOR ':' value          (no space after the colon)
    value    := '(' and_expr ')' | '{' or_expr* '}' | term
    term     := PHRASE | '+' WORD | WORD
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from relay.gmail.ast import And, Around, Field, Node, Not, Or, Term
from relay.gmail.errors import QuerySyntaxError
from relay.gmail.lexer import Kind, QueryWarning, Token, lex
from relay.gmail.operators import ADDRESS_OPERATORS, parse_number, validate_value

__all__ = ["MAX_DISTANCE", "ParsedQuery", "parse", "parse_query"]

_QUOTED_AROUND = re.compile(r"\s*(\S.*?)\s+AROUND(?:\s+(\d+))?\s+(\S.*?)\s*", re.DOTALL)
_DEFAULT_DISTANCE = 5
#: The largest ``AROUND`` distance: far below the 32-bit int of SQLite's FTS5 ``NEAR``
#: (which wraps past 2147483647 and then matches nothing).
MAX_DISTANCE = 100_000
_DISTANCE = f"a distance from 0 to {MAX_DISTANCE} words"


@dataclass(frozen=True, slots=True)
class ParsedQuery:
    """A parsed query: the tree and the warnings the parser had."""

    node: Node
    warnings: tuple[QueryWarning, ...]


def parse_query(text: str) -> Node:
    """Parse Gmail search ``text`` into a tree; raise QuerySyntaxError if it is malformed."""
    return parse(text).node


def parse(text: str) -> ParsedQuery:
    """Parse ``text`` and also return the parser's warnings (lower-case ``or``, ``!``, ...)."""
    warnings: list[QueryWarning] = []
    cursor = _Cursor(text, lex(text, warnings), warnings)
    node = _query(cursor)
    return ParsedQuery(node, tuple(warnings))


@dataclass(slots=True)
class _Cursor:
    """The token list, the read position, and the operator whose value is being read."""

    text: str
    tokens: list[Token]
    warnings: list[QueryWarning]
    index: int = 0
    fields: list[str] = field(default_factory=list)

    @property
    def token(self) -> Token:
        return self.tokens[self.index]

    def take(self) -> Token:
        token = self.tokens[self.index]
        self.index += 1
        return token

    def accept(self, kind: Kind) -> Token | None:
        return self.take() if self.token.kind is kind else None

    def error(self, expected: str, token: Token | None = None) -> QuerySyntaxError:
        return QuerySyntaxError(self.text, (token or self.token).start + 1, expected)


def _query(cursor: _Cursor) -> Node:
    """query := and_expr END"""
    node = _and_expr(cursor)
    if cursor.token.kind is not Kind.END:
        closing = cursor.token.kind in (Kind.RPAREN, Kind.RBRACE)
        raise cursor.error(
            f"a search term, not an unmatched {cursor.token.text!r}" if closing else "a search term"
        )
    return node


def _and_expr(cursor: _Cursor) -> Node:
    """and_expr := or_expr ( ['AND'] or_expr )*"""
    operands = [_or_expr(cursor)]
    while cursor.token.kind not in (Kind.END, Kind.RPAREN, Kind.RBRACE):
        if cursor.accept(Kind.AND) and cursor.token.kind in (Kind.END, Kind.RPAREN, Kind.RBRACE):
            raise cursor.error("a search term after AND")
        operands.append(_or_expr(cursor))
    return operands[0] if len(operands) == 1 else And(tuple(operands))


def _or_expr(cursor: _Cursor) -> Node:
    """or_expr := unary ( 'OR' unary )*"""
    operands = [_unary(cursor)]
    while cursor.accept(Kind.OR):
        if cursor.token.kind in (Kind.END, Kind.RPAREN, Kind.RBRACE, Kind.OR, Kind.AND):
            raise cursor.error("a search term after OR")
        operands.append(_unary(cursor))
    return operands[0] if len(operands) == 1 else Or(tuple(operands))


def _unary(cursor: _Cursor) -> Node:
    """unary := '-' unary | around"""
    if cursor.accept(Kind.NOT):
        return Not(_unary(cursor))
    return _around(cursor)


def _around(cursor: _Cursor) -> Node:
    """around := primary [ 'AROUND' [NUMBER] primary ]"""
    start = cursor.token
    left = _primary(cursor)
    keyword = cursor.accept(Kind.AROUND)
    if keyword is None:
        return left
    if not isinstance(left, Term):
        raise cursor.error("a word or phrase before AROUND", start)
    distance = _DEFAULT_DISTANCE
    if cursor.token.kind is Kind.WORD and cursor.token.text.isdigit():
        distance = _distance(cursor, cursor.take())
    right_token = cursor.token
    right = _primary(cursor)
    if not isinstance(right, Term):
        raise cursor.error("a word or phrase after AROUND", right_token)
    return Around(left, right, distance)


def _primary(cursor: _Cursor) -> Node:
    """primary := '(' and_expr ')' | '{' or_expr* '}' | field | term"""
    kind = cursor.token.kind
    if kind is Kind.LPAREN:
        return _parens(cursor)
    if kind is Kind.LBRACE:
        return _braces(cursor)
    if kind is Kind.FIELD:
        return _field(cursor)
    if kind in (Kind.OR, Kind.AND, Kind.AROUND):
        raise cursor.error(f"a search term before {cursor.token.text}")
    if kind in (Kind.RPAREN, Kind.RBRACE):
        raise cursor.error(f"a search term before {cursor.token.text!r}")
    return _term(cursor)


def _parens(cursor: _Cursor) -> Node:
    """'(' and_expr ')'"""
    opening = cursor.take()
    if cursor.token.kind is Kind.RPAREN:
        raise cursor.error("a search term inside '( )'")
    node = _and_expr(cursor)
    if cursor.accept(Kind.RPAREN) is None:
        raise cursor.error(f"')' to close the '(' at column {opening.start + 1}")
    return node


def _braces(cursor: _Cursor) -> Node:
    """'{' or_expr* '}': any one of the items."""
    opening = cursor.take()
    operands: list[Node] = []
    while cursor.token.kind not in (Kind.RBRACE, Kind.END, Kind.RPAREN):
        operands.append(_or_expr(cursor))
    if cursor.accept(Kind.RBRACE) is None:
        raise cursor.error(f"'}}' to close the '{{' at column {opening.start + 1}")
    if not operands:
        raise cursor.error("a search term inside '{ }'", opening)
    return operands[0] if len(operands) == 1 else Or(tuple(operands))


def _field(cursor: _Cursor) -> Field:
    """field := OPERATOR ':' value"""
    operator = cursor.take()
    if cursor.token.start != operator.end or cursor.token.kind not in (
        Kind.WORD,
        Kind.PHRASE,
        Kind.LPAREN,
        Kind.LBRACE,
        Kind.EXACT,
    ):
        raise QuerySyntaxError(
            cursor.text, operator.end + 1, f"a value right after '{operator.text}:'"
        )
    cursor.fields.append(operator.text)
    try:
        value = _value(cursor)
    finally:
        cursor.fields.pop()
    return Field(operator.text, value)


def _value(cursor: _Cursor) -> Node:
    """value := '(' and_expr ')' | '{' or_expr* '}' | term"""
    if cursor.token.kind is Kind.LPAREN:
        return _parens(cursor)
    if cursor.token.kind is Kind.LBRACE:
        return _braces(cursor)
    return _term(cursor)


def _term(cursor: _Cursor) -> Node:
    """term := PHRASE | '+' WORD | WORD (a phrase may hold ``x AROUND n y``)"""
    exact = cursor.accept(Kind.EXACT) is not None
    token = cursor.token
    if token.kind is Kind.PHRASE and not exact:
        cursor.take()
        return _phrase(cursor, token)
    if token.kind is not Kind.WORD:
        raise cursor.error("a word after '+'" if exact else "a search term")
    cursor.take()
    _check_value(cursor, token)
    if "+" in token.text.lstrip("+") and "@" not in token.text:
        cursor.warnings.append(QueryWarning(token.start + 1, f"{token.text!r} read as words OR-ed"))
    return Term(token.text, exact=exact)


def _phrase(cursor: _Cursor, token: Token) -> Node:
    around = _QUOTED_AROUND.fullmatch(token.text)
    if around is None:
        if not token.text.strip():
            raise cursor.error("words between the quotes", token)
        _check_value(cursor, token)
        return Term(token.text, quoted=True)
    left, distance, right = around.groups()
    return Around(
        Term(left, quoted=True),
        Term(right, quoted=True),
        _distance(cursor, token, distance) if distance else _DEFAULT_DISTANCE,
        ordered=True,
    )


def _distance(cursor: _Cursor, token: Token, text: str | None = None) -> int:
    """The ``AROUND`` distance ``text`` (default: the token's), or a syntax error at it."""
    try:
        return parse_number(token.text if text is None else text, MAX_DISTANCE, _DISTANCE)
    except ValueError as exc:
        raise cursor.error(str(exc), token) from None


def _check_value(cursor: _Cursor, token: Token) -> None:
    if not cursor.fields or cursor.fields[-1] in ADDRESS_OPERATORS:
        return
    try:
        validate_value(cursor.fields[-1], token.text)
    except ValueError as exc:
        raise cursor.error(str(exc), token) from None
