"""Unicode folding and word tokenisation shared by queries and messages (spec §3.1-3.2)."""

from __future__ import annotations

import dataclasses
import re
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass

__all__ = ["Text", "fold", "tokenize"]

# A word character is a letter, digit, underscore (``\w``) or combining mark; a dot between
# two digits stays inside a number, so "1.2047" is one token and "example.com" is two.
_MARKS = "\u0300-\u036f\u0483-\u0489\u0591-\u05bd\u0610-\u061a\u064b-\u065f\u0900-\u0903"
_MARKS += "\u093a-\u094f\u0951-\u0957\u0962\u0963\u1ab0-\u1aff\u1dc0-\u1dff\u20d0-\u20ff"
_MARKS += "\u302a-\u302f\u3099\u309a\ufe20-\ufe2f"
_WORD = rf"[\w{_MARKS}]+"
# Leading zeros of a number are dropped ("01.2047" is the number 1.2047).
_NUMBER_END = rf"(?![\w{_MARKS}])"
_TOKEN = re.compile(rf"(?:0+(?=\d+(?:\.\d+)*{_NUMBER_END}))?({_WORD}(?:(?<=\d)\.(?=\d){_WORD})*)")


def fold(text: str) -> str:
    """Return ``text`` NFC-normalised and case-folded (``ß`` becomes ``ss``)."""
    return unicodedata.normalize("NFC", text).casefold()


def tokenize(text: str) -> tuple[str, ...]:
    """Return the folded words of ``text``; punctuation and white space separate them."""
    return tuple(_TOKEN.findall(fold(text)))


@dataclass(frozen=True, slots=True, eq=False)
class Text:
    """One searchable piece of a message (a subject, a body, a display name, an address...).

    ``field`` names where it comes from; ``tokens`` are its folded words and ``index`` maps
    each word to its positions, so a word costs one lookup and a phrase a few comparisons.
    """

    field: str
    text: str
    tokens: tuple[str, ...]
    index: dict[str, list[int]] = dataclasses.field(repr=False)

    @classmethod
    def of(cls, field: str, text: str) -> Text:
        """Tokenise and index ``text``."""
        tokens = tokenize(text)
        index: dict[str, list[int]] = {}
        for position, token in enumerate(tokens):
            index.setdefault(token, []).append(position)
        return cls(field, text, tokens, index)

    def find(self, phrase: tuple[str, ...]) -> Iterator[int]:
        """Yield each position at which the words of ``phrase`` occur consecutively."""
        size = len(phrase)
        for start in self.index.get(phrase[0], ()):
            if size == 1 or self.tokens[start : start + size] == phrase:
                yield start

    def excerpt(self, start: int, end: int) -> str:
        """Return the line(s) of the text holding the words ``start`` to ``end`` (exclusive)."""
        spans = [m.span(1) for m in _TOKEN.finditer(unicodedata.normalize("NFC", self.text))]
        if len(spans) != len(self.tokens) or not self.tokens:
            return " ".join(self.tokens[start:end])
        text = unicodedata.normalize("NFC", self.text)
        first = text.rfind("\n", 0, spans[start][0]) + 1
        last = text.find("\n", spans[end - 1][1])
        return text[first : last if last >= 0 else len(text)].strip()
