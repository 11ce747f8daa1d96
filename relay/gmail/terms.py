"""Words and phrases of a query matched against tokenised text (spec §3.3, AROUND §2.1.6)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import NamedTuple

from relay.gmail.ast import Around, Term
from relay.gmail.words import Text, tokenize

__all__ = ["Hit", "Pattern", "around_hits", "compile_term", "term_hits"]

# Unquoted, these separate words that may occur in any order (R:S6); every other
# punctuation mark joins its neighbours into a phrase ("PROJ-42", "example.com").
_ANY_ORDER = re.compile(r"[~#$%^*;,<>?`]")


class Hit(NamedTuple):
    """Where a phrase matched: words ``start`` to ``end`` (exclusive) of ``text``."""

    text: Text
    start: int
    end: int

    def to_dict(self) -> dict[str, str]:
        """Return the field and the line(s) that matched, for explanations."""
        return {"field": self.text.field, "text": self.text.excerpt(self.start, self.end)}


@dataclass(frozen=True, slots=True)
class Pattern:
    """A compiled term: any of ``alternatives`` matches; an alternative needs all its phrases."""

    alternatives: tuple[tuple[tuple[str, ...], ...], ...]


@lru_cache(maxsize=4096)
def compile_term(term: Term) -> Pattern:
    """Return the phrases ``term`` stands for.

    A quoted phrase is one phrase. Unquoted, ``a+b`` (no ``@``) is ``a OR b`` (R:S9 #302),
    ``a#b`` means both words in any order, and ``a-b`` / ``a.b`` is the phrase ``"a b"``.
    """
    if term.quoted:
        phrase = tokenize(term.text)
        return Pattern(((phrase,),) if phrase else ())
    choices = term.text.split("+") if "@" not in term.text else [term.text]
    alternatives = []
    for choice in choices:
        phrases = tuple(p for p in (tokenize(part) for part in _ANY_ORDER.split(choice)) if p)
        if phrases:
            alternatives.append(phrases)
    return Pattern(tuple(alternatives))


def term_hits(pattern: Pattern, texts: Sequence[Text]) -> list[Hit]:
    """Return the first hit in each text of every phrase of the first alternative that matches
    (a phrase must lie within one text), or an empty list."""
    for alternative in pattern.alternatives:
        hits: list[Hit] = []
        for phrase in alternative:
            before = len(hits)
            for text in texts:
                positions = text.index.get(phrase[0])
                if positions:
                    start = positions[0] if len(phrase) == 1 else next(text.find(phrase), None)
                    if start is not None:
                        hits.append(Hit(text, start, start + len(phrase)))
            if len(hits) == before:
                break
        else:
            return hits
    return []


def around_hits(node: Around, texts: Sequence[Text]) -> list[Hit]:
    """Return hits where the two sides of ``node`` lie within its distance in one text."""
    left, right = tokenize(node.left.text), tokenize(node.right.text)
    if not left or not right:
        return []
    hits = []
    for text in texts:
        for start in text.find(left):
            for other in text.find(right):
                gap = other - (start + len(left))
                if not node.ordered and gap < 0:
                    gap = start - (other + len(right))
                if 0 <= gap <= node.distance:
                    first, last = min(start, other), max(start + len(left), other + len(right))
                    hits.append(Hit(text, first, last))
                    break
    return hits
