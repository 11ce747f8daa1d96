"""Address syntax: what an address or a bare user name is; address headers parsed and written.

Parsing is strict on purpose (the CVE-2023-27043 class): a header the stdlib parser reports
any defect for, beyond "bare name without a domain", is treated as unparsable and is left
exactly as it came, never guessed at.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from email import policy
from email.errors import MessageError

from relay.cleanup.fields import Field, find, make_field, replace, text_of
from relay.cleanup.rfc2047 import encode_phrase

__all__ = [
    "Group",
    "Item",
    "Mailbox",
    "address_key",
    "display_name",
    "domain_of",
    "format_address_list",
    "is_address",
    "is_bare_name",
    "is_domain",
    "mailboxes",
    "parse_address_list",
    "read_addresses",
    "write_addresses",
]

_ATEXT = r"[A-Za-z0-9!#$%&'*+\-/=?^_`{|}~\u0080-\U0010ffff]"
_DOT_ATOM = rf"{_ATEXT}+(?:\.{_ATEXT}+)*"
_QUOTED = r'"(?:[\x20\x21\x23-\x5b\x5d-\x7e\u0080-\U0010ffff]|\\[\x20-\x7e])*"'
_LABEL = (
    r"[A-Za-z0-9\u0080-\U0010ffff](?:[A-Za-z0-9\-\u0080-\U0010ffff]*[A-Za-z0-9\u0080-\U0010ffff])?"
)
_DOMAIN = rf"{_LABEL}(?:\.{_LABEL})*"
_LITERAL = r"\[[\x21-\x5a\x5e-\x7e]+\]"
_ADDRESS = re.compile(rf"(?P<local>{_DOT_ATOM}|{_QUOTED})@(?P<domain>{_DOMAIN}|{_LITERAL})")
_DOMAIN_ONLY = re.compile(_DOMAIN)
_BARE_NAME = re.compile(r"[-A-Za-z0-9!*+/=_.]+")  # Trac's "user name" pattern
_NO_DOMAIN = "addr-spec local part with no domain"
_NEIGHBOUR = {"Cc": "To", "To": "From", "Reply-To": "From"}  # where a new field goes
#: Longer address headers are not parsed (left as they are): the stdlib parser takes time
#: quadratic in the length (gh-136063): 0.8 s at 100 KB, some 2000 named addresses.
_MAX_PARSED = 100_000


def is_address(text: str) -> bool:
    """True for ``local@domain`` within RFC 5321 limits (64-octet local part, 254 in all)."""
    match = _ADDRESS.fullmatch(text)
    return match is not None and len(match["local"].encode()) <= 64 and len(text.encode()) <= 254


def is_bare_name(text: str) -> bool:
    """True for a user name without a domain (``alice``), as Trac recognises one."""
    return bool(_BARE_NAME.fullmatch(text)) and len(text) <= 64


def is_domain(text: str) -> bool:
    """True for a domain name (``example.org``, ``intranet``)."""
    return bool(_DOMAIN_ONLY.fullmatch(text)) and len(text) <= 253


def domain_of(address: str) -> str:
    """The lower-cased domain of ``address`` (``""`` for a bare name)."""
    return address.rpartition("@")[2].lower() if "@" in address else ""


def address_key(address: str) -> str:
    """The form addresses are compared in: case-insensitive, as Trac and Gmail do."""
    return address.lower()


@dataclass(frozen=True, slots=True)
class Mailbox:
    """One person: an optional display name and an address (or a bare user name)."""

    display: str
    address: str


@dataclass(frozen=True, slots=True)
class Group:
    """A named group of mailboxes; ``undisclosed-recipients:;`` is one with no members."""

    display: str
    members: tuple[Mailbox, ...]


Item = Mailbox | Group


def parse_address_list(value: str) -> tuple[Item, ...] | None:
    """Parse an unfolded address header value; ``None`` if it is not clean.

    Clean means: the stdlib parser reports no defect except a bare user name, and every
    address passes :func:`is_address` or :func:`is_bare_name`. A value over 100 000
    characters is not parsed at all (``None``).
    """
    if len(value) > _MAX_PARSED:
        return None
    try:
        header = policy.default.header_factory("To", value)
        defects = [str(defect) for defect in header.defects]
        groups = header.groups
    except (MessageError, ValueError, LookupError, IndexError, TypeError, AttributeError):
        return None
    items: list[Item] = []
    for group in groups:
        members = tuple(Mailbox(a.display_name, _address_of(a)) for a in group.addresses)
        if not all(is_address(m.address) or is_bare_name(m.address) for m in members):
            return None
        if group.display_name is None:
            items.extend(members)
        else:
            items.append(Group(group.display_name, members))
    bare = sum(1 for item in _mailboxes(items) if "@" not in item.address)
    if any(defect != _NO_DOMAIN for defect in defects) or defects.count(_NO_DOMAIN) != bare:
        return None
    return tuple(items)


def _address_of(address: object) -> str:
    domain = getattr(address, "domain", "")
    return str(getattr(address, "addr_spec", "")) if domain else str(address.username)  # type: ignore[attr-defined]


def _mailboxes(items: list[Item]) -> list[Mailbox]:
    return [m for item in items for m in (item.members if isinstance(item, Group) else (item,))]


def format_address_list(items: tuple[Item, ...]) -> str:
    """Write mailboxes and groups as 7-bit header text (display names encoded as needed)."""
    return ", ".join(_format_item(item) for item in items)


def _format_item(item: Item) -> str:
    if isinstance(item, Group):
        members = ", ".join(_format_item(member) for member in item.members)
        return f"{encode_phrase(item.display)}:{' ' + members if members else ''};"
    if not item.display:
        return item.address
    return f"{encode_phrase(item.display)} <{item.address}>"


def read_addresses(fields: tuple[Field, ...], name: str) -> tuple[Item, ...] | None:
    """The parsed items of the one ``name`` field (``()`` if absent); ``None`` if unusable.

    Unusable: repeated, not UTF-8, or not clean (see :func:`parse_address_list`).
    """
    found = find(fields, name)
    if not found:
        return ()
    text = text_of(found[0]) if len(found) == 1 else None
    return None if text is None else parse_address_list(text)


def write_addresses(
    fields: tuple[Field, ...], name: str, items: tuple[Item, ...]
) -> tuple[Field, ...]:
    """Replace the ``name`` field with ``items`` (remove it when there are none)."""
    field = make_field(name, format_address_list(items)) if items else None
    return replace(fields, name, field, after=_NEIGHBOUR.get(name, ""))


def mailboxes(items: tuple[Item, ...]) -> tuple[Mailbox, ...]:
    """Every mailbox in ``items``, group members included."""
    return tuple(_mailboxes(list(items)))


def display_name(fields: tuple[Field, ...], name: str) -> str:
    """The display name of the first mailbox of field ``name``, read leniently.

    For a header that is not clean (``From: Project <>``, as Trac writes with an empty
    ``smtp_from``): only the name is taken, never an address.
    """
    found = find(fields, name)
    text = text_of(found[0]) if found else None
    try:
        addresses = policy.default.header_factory(name, text).addresses if text else ()
    except (MessageError, ValueError, LookupError, IndexError, TypeError, AttributeError):
        return ""
    return str(addresses[0].display_name) if addresses else ""
