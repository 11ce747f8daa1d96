"""The search operators: their names, the kind of value each takes, value parsing (§2.2, §3.6)."""

from __future__ import annotations

import datetime as dt
import re
from functools import lru_cache

__all__ = [
    "ADDRESS_OPERATORS",
    "AGE_OPERATORS",
    "CHOICES",
    "DATE_OPERATORS",
    "MAX_AGE_YEARS",
    "MAX_EPOCH",
    "MAX_SIZE",
    "OPERATORS",
    "SIZE_OPERATORS",
    "STATE_HAS",
    "STATE_OPERATORS",
    "TEXT_OPERATORS",
    "canonical_operator",
    "parse_age",
    "parse_date",
    "parse_size",
    "validate_value",
]

ADDRESS_OPERATORS = frozenset({"from", "to", "cc", "bcc", "replyto", "deliveredto", "list"})
TEXT_OPERATORS = frozenset({"subject", "filename"})
SIZE_OPERATORS = frozenset({"size", "larger", "smaller"})
DATE_OPERATORS = frozenset({"after", "before"})
AGE_OPERATORS = frozenset({"older_than", "newer_than"})
#: Operators whose value is one of a fixed set of words.
CHOICES: dict[str, tuple[str, ...]] = {
    "has": (
        "attachment", "drive", "document", "spreadsheet", "presentation", "youtube",
        "userlabels", "nouserlabels", "yellow-star", "orange-star", "red-star", "purple-star",
        "blue-star", "green-star", "red-bang", "orange-guillemet", "yellow-bang", "green-check",
        "blue-info", "purple-question",
    ),
    "is": ("important", "starred", "unread", "read", "snoozed", "muted"),
    "in": ("inbox", "trash", "spam", "sent", "snoozed", "chats", "anywhere"),
    "category": (
        "primary", "social", "promotions", "updates", "forums", "reservations", "purchases",
    ),
}  # fmt: skip
#: Operators that read the message's mutable state (labels, flags, location) ...
STATE_OPERATORS = frozenset({"label", "is", "in", "category"})
#: ... and the has: values that do too.
STATE_HAS = frozenset(CHOICES["has"]) - {
    "attachment",
    "drive",
    "document",
    "spreadsheet",
    "presentation",
    "youtube",
}
_ALIASES = {"newer": "after", "older": "before"}
OPERATORS = frozenset(
    ADDRESS_OPERATORS
    | TEXT_OPERATORS
    | SIZE_OPERATORS
    | DATE_OPERATORS
    | AGE_OPERATORS
    | set(CHOICES)
    | {"label", "rfc822msgid"}
    | set(_ALIASES)
)

_SIZE = re.compile(r"(\d+(?:\.\d+)?)(k|kb|m|mb|g|gb|b)?", re.IGNORECASE)
_UNITS = {
    "": 1,
    "b": 1,
    "k": 1024,
    "kb": 1024,
    "m": 1 << 20,
    "mb": 1 << 20,
    "g": 1 << 30,
    "gb": 1 << 30,
}
_DATE_FORMATS = (
    (re.compile(r"(\d{4})[/-](\d{1,2})[/-](\d{1,2})"), (1, 2, 3)),
    (re.compile(r"(\d{1,2})/(\d{1,2})/(\d{4})"), (3, 1, 2)),
)
_AGE = re.compile(r"(\d+)([dmy])", re.IGNORECASE)
#: Bounds that keep every size an SQLite integer and every date inside what ``datetime``
#: holds, so the evaluator, the SQL compiler and every caller see the same valid values.
MAX_SIZE = 1 << 50  # 1 PiB: no message comes near it
MAX_EPOCH = 253_402_300_799  # 9999-12-31 23:59:59 UTC, the last second datetime holds
MAX_AGE_YEARS = 1000
_AGE_LIMITS = {"d": 366 * MAX_AGE_YEARS, "m": 12 * MAX_AGE_YEARS, "y": MAX_AGE_YEARS}


def canonical_operator(name: str) -> str | None:
    """Return the canonical name of operator ``name`` (any case, aliases resolved) or None."""
    name = name.lower()
    if name not in OPERATORS:
        return None
    return _ALIASES.get(name, name)


@lru_cache(maxsize=1024)
def parse_size(text: str) -> int:
    """Return the byte count of ``10M``/``500K``/``1234`` (K = 1024, M = 1048576)."""
    match = _SIZE.fullmatch(text)
    if match is None:
        raise ValueError("a size such as 500K, 10M or a number of bytes")
    number, unit = match.groups()
    size = float(number) * _UNITS[(unit or "").lower()]
    if size > MAX_SIZE:
        raise ValueError(f"a size up to {MAX_SIZE >> 30}G")
    return int(size)


@lru_cache(maxsize=1024)
def parse_date(text: str) -> dt.date | int:
    """Return the calendar date of ``YYYY/MM/DD``, ``YYYY-MM-DD`` or ``MM/DD/YYYY``,
    or the epoch second of an integer value."""
    if text.isdigit() and len(text) > 4:
        return parse_number(text, MAX_EPOCH, f"a date up to 9999/12/31 or epoch second {MAX_EPOCH}")
    for pattern, (year, month, day) in _DATE_FORMATS:
        match = pattern.fullmatch(text)
        if match is not None:
            try:
                return dt.date(int(match[year]), int(match[month]), int(match[day]))
            except ValueError:
                break
    raise ValueError("a date such as 2025/06/15, 06/15/2025 or epoch seconds")


@lru_cache(maxsize=1024)
def parse_age(text: str) -> tuple[int, str]:
    """Return (count, unit) of a relative age such as ``7d``, ``2m`` or ``1y``."""
    match = _AGE.fullmatch(text)
    if match is None:
        raise ValueError("an age such as 7d, 2m or 1y (units: d, m, y; h is not supported)")
    unit = match[2].lower()
    limit = _AGE_LIMITS[unit]
    expected = f"an age up to {limit}{unit} ({MAX_AGE_YEARS} years)"
    return parse_number(match[1], limit, expected), unit


def parse_number(text: str, limit: int, expected: str) -> int:
    """``text`` as a whole number from 0 to ``limit`` in ASCII digits (no superscript or
    Arabic-Indic ones, never so long that ``int()`` refuses it); else ValueError saying
    ``expected``."""
    digits = text.lstrip("0")
    if not (text.isascii() and text.isdigit()) or len(digits) > len(str(limit)):
        raise ValueError(expected)
    number = int(digits or "0")
    if number > limit:
        raise ValueError(expected)
    return number


def validate_value(operator: str, text: str) -> None:
    """Raise ValueError (saying what was expected) if ``text`` is no value of ``operator``."""
    if operator in SIZE_OPERATORS:
        parse_size(text)
    elif operator in DATE_OPERATORS:
        parse_date(text)
    elif operator in AGE_OPERATORS:
        parse_age(text)
    elif operator in CHOICES and text.lower() not in CHOICES[operator]:
        raise ValueError(f"one of {', '.join(CHOICES[operator])}")
