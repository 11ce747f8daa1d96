"""mailFilters.xml (Gmail's filter export, an Atom feed) <-> filters (spec §5)."""

from __future__ import annotations

import datetime as dt
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from typing import TypeVar

from relay.gmail.errors import RuleFileError
from relay.gmail.filters import Actions, Criteria, Filter, make_filter

__all__ = ["filter_from_properties", "read_mailfilters", "write_mailfilters"]

_T = TypeVar("_T")
_ATOM = "http://www.w3.org/2005/Atom"
_APPS = "http://schemas.google.com/apps/2006"
_UNITS = {"s_sb": 1, "s_skb": 1024, "s_smb": 1 << 20}
_COMPARISONS = {"s_sl": "larger", "s_ss": "smaller"}
#: smartLabelToApply values <-> filter categories (``_receipt`` is gmailctl's, unverified).
_SMART_LABELS = {
    "^smartlabel_personal": "personal",
    "^smartlabel_social": "social",
    "^smartlabel_promo": "promotions",
    "^smartlabel_notification": "updates",
    "^smartlabel_group": "forums",
    "^smartlabel_receipt": "purchases",
}
_TEXT_CRITERIA = {
    "from": "from_",
    "to": "to",
    "subject": "subject",
    "hasTheWord": "query",
    "doesNotHaveTheWord": "negated_query",
}
_FLAGS = {
    "shouldArchive": "archive",
    "shouldMarkAsRead": "mark_read",
    "shouldStar": "star",
    "shouldTrash": "delete",
    "shouldNeverSpam": "never_spam",
}


def read_mailfilters(data: str | bytes, where: str = "mailFilters.xml") -> tuple[Filter, ...]:
    """Return the filters of a mailFilters.xml document; raise RuleFileError if it is invalid."""
    try:
        root = ET.fromstring(data)
    except ET.ParseError as exc:
        raise RuleFileError(where, f"not XML: {exc}") from None
    if root.tag != f"{{{_ATOM}}}feed":
        raise RuleFileError(where, "the root element is not an Atom <feed>")
    filters = []
    for number, entry in enumerate(root.iter(f"{{{_ATOM}}}entry"), start=1):
        properties = [
            (p.get("name", ""), p.get("value", "")) for p in entry.iter(f"{{{_APPS}}}property")
        ]
        try:
            filters.append(filter_from_properties(properties))
        except ValueError as exc:
            raise RuleFileError(f"{where}: entry {number}", str(exc)) from None
    return tuple(filters)


def write_mailfilters(
    filters: Sequence[Filter],
    *,
    updated: dt.datetime,
    author_name: str = "notify-relay",
    author_email: str = "",
) -> str:
    """Return mailFilters.xml for ``filters``; a filter with several labels becomes one entry
    per label (Gmail keeps one label per filter), the first carrying the other actions."""
    ET.register_namespace("", _ATOM)
    ET.register_namespace("apps", _APPS)
    stamp = updated.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    base = int(updated.timestamp() * 1000)
    entries = [properties for rule in filters for properties in _entries(rule)]
    ids = [str(base + n) for n in range(1, len(entries) + 1)]
    feed = ET.Element(f"{{{_ATOM}}}feed")
    _child(feed, "title", "Mail Filters")
    _child(feed, "id", "tag:mail.google.com,2008:filters:" + ",".join(ids))
    _child(feed, "updated", stamp)
    author = _child(feed, "author")
    _child(author, "name", author_name)
    _child(author, "email", author_email)
    for ident, properties in zip(ids, entries, strict=True):
        entry = _child(feed, "entry")
        _child(entry, "category").set("term", "filter")
        _child(entry, "title", "Mail Filter")
        _child(entry, "id", f"tag:mail.google.com,2008:filter:{ident}")
        _child(entry, "updated", stamp)
        _child(entry, "content", "")
        for name, value in properties:
            ET.SubElement(entry, f"{{{_APPS}}}property", {"name": name, "value": value})
    ET.indent(feed)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(feed, encoding="unicode") + "\n"


def filter_from_properties(properties: Sequence[tuple[str, str]]) -> Filter:
    """Return the filter of one entry's (name, value) properties; ValueError if invalid."""
    values = dict(properties)
    text = {attr: values[name] for name, attr in _TEXT_CRITERIA.items() if name in values}
    size = None
    if values.get("size", "").strip():
        size = int(values["size"]) * _choice(_UNITS, values.get("sizeUnit", "s_sb"), "sizeUnit")
    criteria = Criteria(
        **text,
        has_attachment=values.get("hasAttachment") == "true",
        exclude_chats=values.get("excludeChats") == "true",
        size=size,
        size_comparison=_choice(_COMPARISONS, values.get("sizeOperator", "s_sl"), "sizeOperator"),
    )
    important = None
    if values.get("shouldAlwaysMarkAsImportant") == "true":
        important = True
    if values.get("shouldNeverMarkAsImportant") == "true":
        important = False
    smart = values.get("smartLabelToApply")
    actions = Actions(
        **{attr: values.get(name) == "true" for name, attr in _FLAGS.items()},
        important=important,
        category=_choice(_SMART_LABELS, smart, "smartLabelToApply") if smart else None,
        labels=tuple(value for name, value in properties if name == "label" and value),
        forward=tuple(value for name, value in properties if name == "forwardTo" and value),
    )
    return make_filter(criteria, actions)


def _entries(rule: Filter) -> list[list[tuple[str, str]]]:
    criteria, actions = rule.criteria, rule.actions
    common = [
        (name, getattr(criteria, attr))
        for name, attr in _TEXT_CRITERIA.items()
        if getattr(criteria, attr)
    ]
    if criteria.has_attachment:
        common.append(("hasAttachment", "true"))
    if criteria.exclude_chats:
        common.append(("excludeChats", "true"))
    if criteria.size is not None:
        unit = next(u for u in ("s_smb", "s_skb", "s_sb") if criteria.size % _UNITS[u] == 0)
        operator = next(k for k, v in _COMPARISONS.items() if v == criteria.size_comparison)
        common += [
            ("size", str(criteria.size // _UNITS[unit])),
            ("sizeOperator", operator),
            ("sizeUnit", unit),
        ]
    first = [(name, "true") for name, attr in _FLAGS.items() if getattr(actions, attr)]
    if actions.important is not None:
        first.append(
            (
                "shouldAlwaysMarkAsImportant"
                if actions.important
                else "shouldNeverMarkAsImportant",
                "true",
            )
        )
    if actions.category:
        first.append(("smartLabelToApply", _smart_label(actions.category)))
    first += [("forwardTo", address) for address in actions.forward]
    labels = [[("label", label)] for label in actions.labels] or [[]]
    return [common + labels[0] + first] + [common + extra for extra in labels[1:]]


def _choice(table: dict[str, _T], value: str, name: str) -> _T:
    if value not in table:
        raise ValueError(f"{name} is {value!r}, expected one of {', '.join(table)}")
    return table[value]


def _smart_label(category: str) -> str:
    return next(smart for smart, name in _SMART_LABELS.items() if name == category)


def _child(parent: ET.Element, tag: str, text: str | None = None) -> ET.Element:
    element = ET.SubElement(parent, f"{{{_ATOM}}}{tag}")
    element.text = text
    return element
