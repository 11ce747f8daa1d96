"""Query text -> tokens with their offsets (the lexical layer of spec §2.1)."""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass

from relay.gmail.errors import QuerySyntaxError
from relay.gmail.operators import canonical_operator
from relay.gmail.words import tokenize

__all__ = ["Kind", "QueryWarning", "Token", "lex"]


class Kind(enum.Enum):
    """What a token is."""

    WORD = "word"
    PHRASE = "phrase"
    FIELD = "field"
    NOT = "-"
    EXACT = "+"
    LPAREN = "("
    RPAREN = ")"
    LBRACE = "{"
    RBRACE = "}"
    OR = "OR"
    AND = "AND"
    AROUND = "AROUND"
    END = "end of query"


@dataclass(frozen=True, slots=True)
class Token:
    """One token: ``text`` is the word, the phrase without quotes or the operator name;
    ``start``/``end`` are 0-based offsets into the query."""

    kind: Kind
    text: str
    start: int
    end: int


@dataclass(frozen=True, slots=True)
class QueryWarning:
    """Something the query does that Gmail may read differently; ``column`` is 1-based."""

    column: int
    message: str


_PUNCTUATION = {"(": Kind.LPAREN, ")": Kind.RPAREN, "{": Kind.LBRACE, "}": Kind.RBRACE}
_KEYWORDS = {"OR": Kind.OR, "AND": Kind.AND, "AROUND": Kind.AROUND}
_WORD_END = re.compile(r'[\s(){}"]')
_FIELD = re.compile(r"([A-Za-z_0-9]+):")
_UNKNOWN_FIELD = re.compile(r"[A-Za-z_]+:[^/\s]")


def lex(query: str, warnings: list[QueryWarning]) -> list[Token]:
    """Split ``query`` into tokens, the last one END; append soft problems to ``warnings``."""
    tokens: list[Token] = []
    pos = 0
    while pos < len(query):
        char = query[pos]
        if char.isspace():
            pos += 1
        elif char in _PUNCTUATION:
            tokens.append(Token(_PUNCTUATION[char], char, pos, pos + 1))
            pos += 1
        elif char == '"':
            pos = _lex_phrase(query, pos, tokens)
        elif char in "-!+" and _starts_operand(query, pos + 1):
            if char == "!":
                warnings.append(QueryWarning(pos + 1, "'!' read as '-' (negation)"))
            kind = Kind.EXACT if char == "+" else Kind.NOT
            tokens.append(Token(kind, char, pos, pos + 1))
            pos += 1
        else:
            pos = _lex_word(query, pos, tokens, warnings)
    tokens.append(Token(Kind.END, "", len(query), len(query)))
    return tokens


def _starts_operand(query: str, pos: int) -> bool:
    return pos < len(query) and not query[pos].isspace() and query[pos] not in ")}"


def _lex_phrase(query: str, start: int, tokens: list[Token]) -> int:
    end = query.find('"', start + 1)
    if end < 0:
        raise QuerySyntaxError(
            query, len(query) + 1, f"'\"' to close the phrase opened at column {start + 1}"
        )
    tokens.append(Token(Kind.PHRASE, query[start + 1 : end], start, end + 1))
    return end + 1


def _lex_word(query: str, start: int, tokens: list[Token], warnings: list[QueryWarning]) -> int:
    field = _FIELD.match(query, start)
    if field is not None and canonical_operator(field[1]) is not None:
        tokens.append(Token(Kind.FIELD, canonical_operator(field[1]) or "", start, field.end()))
        return field.end()
    match = _WORD_END.search(query, start)
    end = match.start() if match else len(query)
    text = query[start:end]
    if text in _KEYWORDS:
        tokens.append(Token(_KEYWORDS[text], text, start, end))
    elif not tokenize(text):
        warnings.append(QueryWarning(start + 1, f"ignored {text!r}: it has no letters or digits"))
    else:
        if _UNKNOWN_FIELD.match(text):
            warnings.append(QueryWarning(start + 1, f"unknown operator in {text!r}: read as text"))
        if text == "or":
            warnings.append(QueryWarning(start + 1, "lower-case 'or' is a plain word; write OR"))
        tokens.append(Token(Kind.WORD, text, start, end))
    return end
