"""List headers for tracker mail (pure): ``List-Id`` (RFC 2919), ``List-Unsubscribe``
(RFC 2369) with RFC 8058's one-click ``List-Unsubscribe-Post``, and the bulk markers.

Gmail and Microsoft sort and filter notification mail by ``List-Id``; bulk senders must
offer one-click unsubscribe. Templates may name values from the tracker's own headers:

============  ====================  ==============================================
placeholder   from header           example
============  ====================  ==============================================
``{project}`` ``X-Trac-Project``    ``My Project`` (URL-encoded inside URLs)
``{url}``     ``X-URL``             ``https://trac.example.org/myproj`` (no final /)
``{ticket}``  ``X-Trac-Ticket-ID``  ``42``
``{ticket_url}`` ``X-Trac-Ticket-URL`` ``https://trac.example.org/myproj/ticket/42``
============  ====================  ==============================================

A header whose template names a value the message lacks is not added (the trace says
why). ``Auto-Submitted: auto-generated`` and ``Precedence: bulk`` are kept when present
and added when not.
"""

from __future__ import annotations

import re
import string
import urllib.parse
from typing import TYPE_CHECKING

from relay.cleanup.fields import Field, find, make_field, replace, text_of
from relay.cleanup.rfc2047 import decode_unstructured, encode_phrase
from relay.model import TraceEntry

if TYPE_CHECKING:  # options validates with this module's checks
    from relay.cleanup.options import CleanupOptions

__all__ = ["PLACEHOLDERS", "add_list_headers", "check_list_id", "check_unsubscribe"]

Fields = tuple[Field, ...]
Trace = tuple[TraceEntry, ...]

#: Template placeholders and the header each is read from.
PLACEHOLDERS = {
    "project": "X-Trac-Project",
    "url": "X-URL",
    "ticket": "X-Trac-Ticket-ID",
    "ticket_url": "X-Trac-Ticket-URL",
}
_RAW_IN_URL = frozenset({"url", "ticket_url"})  # URLs themselves: inserted as they are
_LIST_ID = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)+")
_URI = re.compile(r"(?:https?://|mailto:)[^\s<>\",]+")
_BULK = (("Auto-Submitted", "auto-generated"), ("Precedence", "bulk"))


def _names(template: str) -> set[str]:
    """The placeholders ``template`` uses; ValueError for an unknown one or bad braces."""
    try:
        names = {name for _, name, _, _ in string.Formatter().parse(template) if name is not None}
    except ValueError as exc:
        raise ValueError(f"{template!r}: {exc} (write {{{{ for a literal brace)") from None
    unknown = names - set(PLACEHOLDERS)
    if unknown:
        allowed = ", ".join(f"{{{name}}}" for name in PLACEHOLDERS)
        raise ValueError(f"unknown placeholder {{{sorted(unknown)[0]}}} (allowed: {allowed})")
    return names


def _split_list_id(template: str) -> tuple[str, str]:
    """(description, id) of ``"Description" <id>``, ``Description <id>`` or a bare ``id``."""
    description, sep, rest = template.rpartition("<")
    if not sep:
        return "", template.strip()
    if not rest.rstrip().endswith(">"):
        raise ValueError(f'expected "Description <id.example.org>", got {template!r}')
    return description.strip().strip('"').strip(), rest.rstrip()[:-1].strip()


def check_list_id(template: str) -> str:
    """Validate a ``list_id`` template (for the config); return it."""
    _names(template)
    _, list_id = _split_list_id(template)
    if not _names(list_id) and not _LIST_ID.fullmatch(list_id):
        raise ValueError(
            f"the id {list_id!r} must look like a domain name: tickets.myproj.example.org"
        )
    return template


def check_unsubscribe(template: str) -> str:
    """Validate one ``list_unsubscribe`` URL template (for the config); return it."""
    _names(template)
    probe = template
    for name in _RAW_IN_URL:  # these stand for whole URLs
        probe = probe.replace(f"{{{name}}}", "https://example.org")
    if not _URI.fullmatch(probe.replace("{", "").replace("}", "")):
        raise ValueError(f"expected an https://, http:// or mailto: URL, got {template!r}")
    return template


def _values(fields: Fields) -> dict[str, str]:
    """The placeholder values the message's own headers provide."""
    values = {}
    for name, header in PLACEHOLDERS.items():
        found = find(fields, header)
        text = text_of(found[0]) if len(found) == 1 else None
        decoded = decode_unstructured(text) if text else None
        if decoded:  # {url}/prefs/notification: no double slash after X-URL's own
            values[name] = decoded.strip().removesuffix("/") if name == "url" else decoded.strip()
    return values


def _fill(template: str, values: dict[str, str], *, url: bool) -> tuple[str | None, str]:
    """``template`` filled in, or (None, the missing header)."""
    wanted = _names(template)
    missing = sorted(PLACEHOLDERS[name] for name in wanted - set(values))
    if missing:
        return None, missing[0]
    if url:
        values = {
            k: v if k in _RAW_IN_URL else urllib.parse.quote(v, safe="") for k, v in values.items()
        }
    return template.format(**{name: values[name] for name in wanted}), ""


def _list_id(fields: Fields, template: str, values: dict[str, str]) -> tuple[Fields, Trace]:
    description, list_id = _split_list_id(template)
    filled, missing = _fill(list_id, values, url=False)
    text, missing = _fill(description, values, url=False) if not missing else (None, missing)
    if filled is None or text is None:
        return fields, (TraceEntry("list_id", f"List-Id not added: no {missing} header"),)
    if not _LIST_ID.fullmatch(filled):
        note = f"List-Id not added: {filled!r} is not a list id (a domain-like name)"
        return fields, (TraceEntry("list_id", note),)
    value = f"{encode_phrase(text)} <{filled}>" if text else f"<{filled}>"
    fields = replace(fields, "List-Id", make_field("List-Id", value))
    return fields, (TraceEntry("list_id", f"List-Id: {value}"),)


def _unsubscribe(
    fields: Fields, options: CleanupOptions, values: dict[str, str]
) -> tuple[Fields, Trace]:
    urls, trace = [], []
    for template in options.list_unsubscribe:
        url, missing = _fill(template, values, url=True)
        if url is None or not _URI.fullmatch(url):
            why = f"no {missing} header" if url is None else f"{url!r} is not a usable URL"
            trace.append(TraceEntry("list_unsubscribe", f"{template} not used: {why}"))
        else:
            urls.append(url)
    if not urls:
        return fields, tuple(trace)
    value = ", ".join(f"<{url}>" for url in urls)
    fields = replace(fields, "List-Unsubscribe", make_field("List-Unsubscribe", value))
    trace.append(TraceEntry("list_unsubscribe", f"List-Unsubscribe: {value}"))
    if options.list_unsubscribe_post and any(url.startswith("https://") for url in urls):
        post = make_field("List-Unsubscribe-Post", "List-Unsubscribe=One-Click")
        fields = replace(fields, "List-Unsubscribe-Post", post, after="List-Unsubscribe")
        trace.append(
            TraceEntry("list_unsubscribe_post", "List-Unsubscribe-Post: List-Unsubscribe=One-Click")
        )
    return fields, tuple(trace)


def add_list_headers(fields: Fields, options: CleanupOptions) -> tuple[Fields, Trace]:
    """Add ``List-Id``, ``List-Unsubscribe`` (and ``-Post``) as configured, replacing any
    already there, and keep or add ``Auto-Submitted`` and ``Precedence``."""
    values, trace = _values(fields), tuple[TraceEntry, ...]()
    if options.list_id:
        fields, more = _list_id(fields, options.list_id, values)
        trace += more
    if options.list_unsubscribe:
        fields, more = _unsubscribe(fields, options, values)
        trace += more
    for name, value in _BULK:
        if not find(fields, name):
            fields = replace(fields, name, make_field(name, value))
            trace += (TraceEntry("list headers", f"{name}: {value} added"),)
    return fields, trace
