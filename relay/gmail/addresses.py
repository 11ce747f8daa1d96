"""Address operators: from: to: cc: bcc: replyto: deliveredto: list: (spec §3.4)."""

from __future__ import annotations

import enum
from functools import lru_cache
from typing import NamedTuple

from relay.gmail.ast import Term
from relay.gmail.terms import Hit, Pattern, compile_term, term_hits
from relay.gmail.view import Mailbox, MessageView
from relay.gmail.words import fold, tokenize

__all__ = ["address_hits", "canonical_address"]

_GMAIL_DOMAINS = ("gmail.com", "googlemail.com")
#: The fields each operator searches: to: also covers Cc, Bcc and the list address.
_SCOPES = {
    "from": ("from",),
    "to": ("to", "cc", "bcc", "list"),
    "cc": ("cc",),
    "bcc": ("bcc",),
    "replyto": ("replyto",),
    "deliveredto": ("deliveredto",),
    "list": ("list",),
}


class _Kind(enum.Enum):
    WORDS = "words in the display name or the address"
    ME = "the user's own address, or the word me"
    ADDRESS = "the whole address"
    LOCAL = "words of the local part (value ending in @)"
    DOMAIN = "the end of the domain (value starting with @ or *@)"


class _Rule(NamedTuple):
    """How one value compares with a mailbox, worked out once per value."""

    kind: _Kind
    pattern: Pattern
    words: tuple[str, ...] = ()
    address: str = ""


def canonical_address(address: str) -> str:
    """Return ``address`` folded; a Gmail address also loses local-part dots and ``+tag``."""
    local, _, domain = fold(address).rpartition("@")
    if domain not in _GMAIL_DOMAINS:
        return fold(address)
    return local.split("+")[0].replace(".", "") + "@gmail.com"


def address_hits(operator: str, term: Term, view: MessageView) -> list[Hit]:
    """Return where ``operator:term`` matches the mailboxes of ``view`` (empty: no match)."""
    rule = _rule(operator, term)
    mailboxes = [m for name in _SCOPES[operator] for m in view.mailboxes[name]]
    if rule.kind is _Kind.WORDS:
        return term_hits(rule.pattern, [t for m in mailboxes for t in (m.name, m.address)])
    if rule.kind is _Kind.ME:
        own = {canonical_address(a) for a in view.user_addresses}
        hits = [_whole(m) for m in mailboxes if canonical_address(m.folded) in own]
        return hits or term_hits(rule.pattern, [t for m in mailboxes for t in (m.name, m.address)])
    if rule.kind is _Kind.ADDRESS:
        own = {canonical_address(a) for a in view.user_addresses}
        folding = rule.address.endswith("@gmail.com") and rule.address in own
        return [
            _whole(m)
            for m in mailboxes
            if m.folded == rule.words[0]
            or (folding and canonical_address(m.folded) == rule.address)
        ]
    test = _in_local_part if rule.kind is _Kind.LOCAL else _ends_domain
    return [_whole(m) for m in mailboxes if rule.words and test(m, rule.words)]


@lru_cache(maxsize=4096)
def _rule(operator: str, term: Term) -> _Rule:
    value = term.text.strip()
    if operator == "list":
        value = value.replace("@", ".")
    pattern = compile_term(term)
    if " " in value or "@" not in value:
        return _Rule(_Kind.ME if value.casefold() == "me" else _Kind.WORDS, pattern)
    if value.endswith("@"):
        return _Rule(_Kind.LOCAL, pattern, tokenize(value[:-1]))
    if value.startswith(("@", "*@")):
        return _Rule(_Kind.DOMAIN, pattern, tokenize(value.lstrip("*@")))
    return _Rule(_Kind.ADDRESS, pattern, (fold(value),), canonical_address(value))


def _whole(mailbox: Mailbox) -> Hit:
    return Hit(mailbox.address, 0, len(mailbox.address.tokens))


def _in_local_part(mailbox: Mailbox, words: tuple[str, ...]) -> bool:
    """``example@``: the words lie consecutively in the local part."""
    return any(start + len(words) <= mailbox.local_size for start in mailbox.address.find(words))


def _ends_domain(mailbox: Mailbox, words: tuple[str, ...]) -> bool:
    """``@example.com`` / ``*@example.com``: the domain ends with these words."""
    tokens = mailbox.address.tokens
    return len(words) <= len(tokens) - mailbox.local_size and tokens[-len(words) :] == words
