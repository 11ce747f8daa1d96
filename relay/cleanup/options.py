"""The ``notification:`` section (Trac's ``[notification]`` options, applied at the relay) and
the ``filters:`` section (per-recipient Gmail filter simulation)."""

from __future__ import annotations

import re
import zoneinfo
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from relay.cleanup.listheaders import check_list_id, check_unsubscribe
from relay.cleanup.mailbox import is_address, is_bare_name, is_domain

__all__ = [
    "CleanupOptions",
    "FilterSetConfig",
    "FiltersConfig",
    "MimeEncoding",
    "split_list",
]

MimeEncoding = Literal["keep", "none", "base64", "qp", "quoted-printable", "auto"]

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def split_list(value: str) -> tuple[str, ...]:
    """Split a Trac list option value at commas and white space: ``"a, b c"`` -> a, b, c."""
    return tuple(part for part in re.split(r"[\s,]+", value) if part)


def _text(value: object) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"expected a non-empty string, got {value!r}")
    if _CONTROL.search(value):
        raise ValueError("must not contain control characters (line breaks, tabs, NUL)")
    return value


def _domain(value: object) -> str:
    text = _text(value).strip().lstrip("@")
    if not is_domain(text):
        raise ValueError(f"expected a domain name such as example.org, got {value!r}")
    return text


def _address(value: object) -> str:
    text = _text(value).strip()
    if not (is_address(text) or is_bare_name(text)):
        raise ValueError(f"expected an address (alice@example.org) or a user name, got {value!r}")
    return text


def _words(value: object) -> tuple[str, ...]:
    if isinstance(value, str):
        return split_list(value)
    if isinstance(value, list) and all(isinstance(item, str) for item in value):
        return tuple(part for item in value for part in split_list(item))
    raise ValueError(f"expected a list of strings, got {value!r}")


def _addresses(value: object) -> tuple[str, ...]:
    return tuple(_address(item) for item in _words(value))


def _domains(value: object) -> tuple[str, ...]:
    return tuple(_domain(item).lower() for item in _words(value))


def _optional(parse: Callable[[object], str]) -> Callable[[object], str | None]:
    return lambda value: None if value is None else parse(value)


def _list_id(value: object) -> str:
    return check_list_id(_text(value).strip())


def _unsubscribe_urls(value: object) -> tuple[str, ...]:
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not all(isinstance(item, str) for item in items):
        raise ValueError(f"expected a URL template or a list of them, got {value!r}")
    return tuple(check_unsubscribe(_text(item).strip()) for item in items)


def _users(value: object) -> dict[str, tuple[str, ...]]:
    if not isinstance(value, dict):
        raise ValueError("expected a mapping of user name to address")
    users: dict[str, tuple[str, ...]] = {}
    for name, address in value.items():
        if not isinstance(address, str) or not is_address(address.strip()):
            raise ValueError(f"user {name!r}: expected one address, got {address!r}")
        users[str(name)] = (address.strip(),)
    return users


@dataclass(frozen=True, slots=True, kw_only=True)
class CleanupOptions:
    """Cleanup settings; names follow Trac's ``[notification]`` section.

    The defaults change nothing but the removal of any ``Bcc:`` header (and bare LF line
    ends, which become CRLF). ``None`` means "leave as received".
    """

    smtp_default_domain: str | None = field(default=None, metadata={"parse": _optional(_domain)})
    use_short_addr: bool = False
    admit_domains: tuple[str, ...] = field(default=(), metadata={"parse": _domains})
    ignore_domains: tuple[str, ...] = field(default=(), metadata={"parse": _domains})
    smtp_always_cc: tuple[str, ...] = field(default=(), metadata={"parse": _addresses})
    smtp_always_bcc: tuple[str, ...] = field(default=(), metadata={"parse": _addresses})
    remove_leaked_bcc: bool = True
    use_public_cc: bool | None = None
    smtp_from: str | None = field(default=None, metadata={"parse": _optional(_address)})
    smtp_from_name: str | None = field(default=None, metadata={"parse": _optional(_text)})
    smtp_replyto: str | None = field(default=None, metadata={"parse": _optional(_address)})
    smtp_subject_prefix: str | None = field(default=None, metadata={"parse": _optional(_text)})
    mime_encoding: MimeEncoding = "keep"
    align_sender: bool = False
    aliases_file: Path | None = None
    users: dict[str, tuple[str, ...]] = field(
        default_factory=dict, hash=False, metadata={"parse": _users}
    )
    trac_env: Path | None = None
    list_id: str | None = field(default=None, metadata={"parse": _optional(_list_id)})
    list_unsubscribe: tuple[str, ...] = field(default=(), metadata={"parse": _unsubscribe_urls})
    list_unsubscribe_post: bool = False

    def __post_init__(self) -> None:
        https = any(
            url.startswith(("https://", "{url}", "{ticket_url}")) for url in self.list_unsubscribe
        )
        if self.list_unsubscribe_post and not https:
            raise ValueError(
                "list_unsubscribe_post: true needs an https:// URL in list_unsubscribe "
                "(RFC 8058 one-click unsubscribe is an HTTPS POST)"
            )


def _parse_timezone(value: object) -> str:
    try:
        zoneinfo.ZoneInfo(str(value))
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise ValueError(
            f'expected a time zone such as "America/Los_Angeles", got "{value}"'
        ) from None
    return str(value)


@dataclass(frozen=True, slots=True, kw_only=True)
class FilterSetConfig:
    """Gmail filters of the recipients matching ``recipients`` (shell-style patterns)."""

    recipients: tuple[str, ...]
    rules: Path
    params: dict[str, str] = field(default_factory=dict, hash=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class FiltersConfig:
    """Per-recipient Gmail filter simulation; ``enforce: [delete]`` drops deleted copies."""

    sets: tuple[FilterSetConfig, ...] = ()
    enforce: tuple[Literal["delete"], ...] = ()
    timezone: str = field(default="America/Los_Angeles", metadata={"parse": _parse_timezone})
