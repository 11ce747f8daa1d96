"""Address operators: from: to: cc: bcc: replyto: deliveredto: list: (spec §3.4)."""

from __future__ import annotations

from collections.abc import Callable

from relay.gmail.ast import Term
from relay.gmail.terms import Hit, compile_term, term_hits
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


def canonical_address(address: str) -> str:
    """Return ``address`` folded; for Gmail addresses without dots and ``+tag`` in the local part."""
    local, _, domain = fold(address).rpartition("@")
    if domain not in _GMAIL_DOMAINS:
        return fold(address)
    return local.split("+")[0].replace(".", "") + "@gmail.com"


def address_hits(operator: str, term: Term, view: MessageView) -> list[Hit]:
    """Return where ``operator:term`` matches the mailboxes of ``view`` (empty: no match)."""
    mailboxes = [m for name in _SCOPES[operator] for m in view.mailboxes[name]]
    value = term.text.strip()
    if operator == "list":
        value = value.replace("@", ".")
    if " " in value or "@" not in value:
        hits = _whole_address(mailboxes, _is_me(view)) if value.casefold() == "me" else []
        return hits or term_hits(compile_term(term), [t for m in mailboxes for t in (m.name, m.address)])
    if value.endswith("@"):
        return _address_hits(mailboxes, tokenize(value[:-1]), _in_local_part)
    if value.startswith(("@", "*@")):
        return _address_hits(mailboxes, tokenize(value.lstrip("*@")), _ends_domain)
    return _whole_address(mailboxes, _is_address(value, view))


def _whole_address(mailboxes: list[Mailbox], test: Callable[[Mailbox], bool]) -> list[Hit]:
    return [Hit(m.address, 0, len(m.address.tokens)) for m in mailboxes if test(m)]


def _is_address(value: str, view: MessageView) -> Callable[[Mailbox], bool]:
    """Full address: equal, or equal in Gmail's dot/+tag folding if it is the user's own."""
    folded = fold(value)
    canonical = canonical_address(value)
    own = canonical.endswith("@gmail.com") and canonical in {
        canonical_address(a) for a in view.user_addresses
    }
    return lambda m: m.folded == folded or (own and canonical_address(m.folded) == canonical)


def _is_me(view: MessageView) -> Callable[[Mailbox], bool]:
    own = {canonical_address(a) for a in view.user_addresses}
    return lambda m: canonical_address(m.folded) in own


def _address_hits(
    mailboxes: list[Mailbox],
    words: tuple[str, ...],
    test: Callable[[Mailbox, tuple[str, ...]], bool],
) -> list[Hit]:
    return _whole_address(mailboxes, lambda m: bool(words) and test(m, words))


def _in_local_part(mailbox: Mailbox, words: tuple[str, ...]) -> bool:
    """``example@``: the words lie consecutively in the local part."""
    return any(start + len(words) <= mailbox.local_size for start in mailbox.address.find(words))


def _ends_domain(mailbox: Mailbox, words: tuple[str, ...]) -> bool:
    """``@example.com`` / ``*@example.com``: the domain ends with these words."""
    tokens = mailbox.address.tokens
    return len(words) <= len(tokens) - mailbox.local_size and tokens[-len(words) :] == words
