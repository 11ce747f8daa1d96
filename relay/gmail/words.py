"""Unicode folding and word tokenisation shared by queries and messages (spec §3.1-3.2)."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterator

__all__ = ["fold", "phrase_positions", "token_spans", "tokenize"]

# A word character is a letter, digit, underscore (``\w``) or combining mark; a dot between
# two digits stays inside a number, so "1.2047" is one token and "example.com" is two.
_MARKS = "\u0300-\u036f\u0483-\u0489\u0591-\u05bd\u0610-\u061a\u064b-\u065f\u0900-\u0903"
_MARKS += "\u093a-\u094f\u0951-\u0957\u0962\u0963\u1ab0-\u1aff\u1dc0-\u1dff\u20d0-\u20ff"
_MARKS += "\u302a-\u302f\u3099\u309a\ufe20-\ufe2f"
_WORD = rf"[\w{_MARKS}]+"
# Leading zeros of a number are dropped ("01.2047" is the number 1.2047).
_NUMBER_END = rf"(?![\w{_MARKS}])"
_TOKEN = re.compile(
    rf"(?:0+(?=\d+(?:\.\d+)*{_NUMBER_END}))?({_WORD}(?:(?<=\d)\.(?=\d){_WORD})*)"
)


def fold(text: str) -> str:
    """Return ``text`` NFC-normalised and case-folded (``ß`` becomes ``ss``)."""
    return unicodedata.normalize("NFC", text).casefold()


def tokenize(text: str) -> tuple[str, ...]:
    """Return the folded words of ``text``; punctuation and white space separate them."""
    return tuple(_TOKEN.findall(fold(text)))


def token_spans(text: str) -> list[tuple[int, int]]:
    """Return the (start, end) offsets in NFC-normalised ``text`` of the words it contains."""
    return [m.span(1) for m in _TOKEN.finditer(unicodedata.normalize("NFC", text))]


def phrase_positions(
    tokens: tuple[str, ...], index: dict[str, list[int]], phrase: tuple[str, ...]
) -> Iterator[int]:
    """Yield each position at which ``phrase`` occurs in ``tokens`` (``index``: word -> positions)."""
    size = len(phrase)
    for start in index.get(phrase[0], ()):
        if size == 1 or tokens[start : start + size] == phrase:
            yield start
