"""One captured message taken apart for reading: headers, text, HTML and parts (pure).

Parts are the leaves of the MIME tree, numbered from 0 in document order; the text and
HTML bodies are parts too (``body``), everything else is an attachment or inline file.

Reading is bounded, so that one crafted message cannot take minutes (the stdlib parser
and its header objects cost some 250 us per MIME part): only the first
:data:`MAX_PARTS` body parts are read (the rest is cut off before parsing and counted),
only the first :data:`MAX_HEADERS` header fields are decoded, and the text and HTML in
:func:`detail` stop after :data:`MAX_BODY` characters. The raw download has it all.
"""

from __future__ import annotations

import email.parser
import email.policy
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from email.message import EmailMessage, Message
from typing import Any, NamedTuple

from relay.capture.meta import CaptureMeta
from relay.capture.timeline import timeline
from relay.gmail.mime import nesting_problem, shorten_content_fields

__all__ = [
    "MAX_BODY",
    "MAX_FIELD",
    "MAX_HEADERS",
    "MAX_PARTS",
    "Contents",
    "Part",
    "contents",
    "detail",
    "link_inline_parts",
    "part_payload",
]

#: Body parts (of any multipart, nested or not) read; the others are only counted.
MAX_PARTS = 500
#: Header fields decoded for display.
MAX_HEADERS = 1000
#: Characters of the text and of the HTML body in :func:`detail`.
MAX_BODY = 1_000_000
#: Characters of a header field decoded; a longer one is shown unfolded as it came (the
#: stdlib header parsers take time quadratic in the length, gh-136063: minutes at 4 MB).
MAX_FIELD = 100_000

_ENVELOPE = ("sender", "recipients", "mail_options", "received_at", "peer", "helo")
_CID = re.compile(r"cid:([^\"'\s)>]+)", re.IGNORECASE)
_HEADER_END = re.compile(rb"\r?\n\r?\n")
_FIELD_START = re.compile(rb"\r?\n(?![ \t])")
_MIME_FIELDS = (b"content-", b"mime-version")
#: A boundary parameter anywhere (a body that merely looks like one only costs a count).
_BOUNDARY = re.compile(rb'boundary\s*=\s*(?:"([^"\r\n]{1,70})"|([^\s;"]{1,70}))', re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class Part:
    """A leaf of the MIME tree."""

    number: int
    content_type: str
    filename: str
    disposition: str
    content_id: str
    size: int
    body: bool

    def as_dict(self) -> dict[str, Any]:
        """The part as JSON-able data."""
        return {
            "part": self.number,
            "content_type": self.content_type,
            "filename": self.filename,
            "disposition": self.disposition,
            "content_id": self.content_id,
            "size": self.size,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class Contents:
    """Decoded headers (in order), the text and HTML bodies, and every part."""

    headers: tuple[tuple[str, str], ...]
    text: str | None
    html: str | None
    parts: tuple[Part, ...]
    #: Body parts cut off unread (:data:`MAX_PARTS`) and header fields not decoded.
    parts_omitted: int = 0
    headers_omitted: int = 0

    @property
    def attachments(self) -> tuple[Part, ...]:
        """The parts that are not the text or HTML body."""
        return tuple(part for part in self.parts if not part.body)


def contents(raw: bytes) -> Contents:
    """Take ``raw`` apart (within the bounds above); malformed pieces come out as well as
    they decode."""
    message, parts_omitted, headers_omitted = _parse(raw)
    text_part = _body(message, "plain")
    html_part = _body(message, "html")
    parts = tuple(
        _part(number, leaf, leaf is text_part or leaf is html_part)
        for number, leaf in enumerate(_leaves(message))
    )
    fields = list(message.raw_items())
    return Contents(
        headers=tuple(_header(message, name, value) for name, value in fields[:MAX_HEADERS]),
        text=_text(text_part) if text_part is not None else None,
        html=_text(html_part) if html_part is not None else None,
        parts=parts,
        parts_omitted=parts_omitted,
        headers_omitted=headers_omitted + max(0, len(fields) - MAX_HEADERS),
    )


def detail(item: Mapping[str, Any], raw: bytes, meta: CaptureMeta | None) -> dict[str, Any]:
    """Everything the message view shows: the list ``item`` plus headers, text, HTML,
    attachments, envelope, rewrite trace, filter results, delivery timeline, and what relay
    mode would have refused (capture mode kept it; ``original_kept``: raw shows it as sent).
    Without ``meta`` the envelope fields are null and the metadata lists empty.

    What the bounds left out is counted (``parts_omitted``, ``headers_omitted``) or
    flagged (``text_truncated``, ``html_truncated``); ``raw_url`` has the whole message.
    """
    parts = contents(raw)
    text, html = parts.text, parts.html
    known = meta or CaptureMeta.blank(str(item.get("id", "")))
    return {
        **item,
        "headers": [list(header) for header in parts.headers],
        "headers_omitted": parts.headers_omitted,
        "text": text[:MAX_BODY] if text is not None else None,
        "text_truncated": text is not None and len(text) > MAX_BODY,
        "html": html[:MAX_BODY] if html is not None else None,
        "html_truncated": html is not None and len(html) > MAX_BODY,
        "attachments": [part.as_dict() for part in parts.attachments],
        "parts_omitted": parts.parts_omitted,
        "raw_url": f"/api/v1/messages/{item.get('id', '')}/raw",
        "envelope": _envelope(meta),
        "trace": [{"option": option, "change": change} for option, change in known.trace],
        "filters": dict(known.filters),
        "timeline": timeline(meta),
        "relay_refusals": list(known.relay_refusals),
        "original_kept": known.original_kept,
    }


def part_payload(raw: bytes, number: int) -> tuple[Part, bytes] | None:
    """Part ``number`` and its decoded bytes, or None if there is no such part (or it is
    beyond the parts read)."""
    for index, leaf in enumerate(_leaves(_parse(raw).message)):
        if index == number:
            payload = leaf.get_payload(decode=True)
            return _part(index, leaf, False), payload if isinstance(payload, bytes) else b""
    return None


def link_inline_parts(html: str, parts: tuple[Part, ...], url: Callable[[int], str]) -> str:
    """Point ``cid:`` references of ``html`` at ``url(part number)``; others stay as they are."""
    numbers = {part.content_id: part.number for part in parts if part.content_id}

    def swap(match: re.Match[str]) -> str:
        number = numbers.get(match[1])
        return url(number) if number is not None else match[0]

    return _CID.sub(swap, html)


def _envelope(meta: CaptureMeta | None) -> dict[str, Any]:
    """The envelope as the message view shows it (every field null without metadata)."""
    if meta is None:
        return dict.fromkeys(_ENVELOPE)
    return {
        "sender": meta.sender,
        "recipients": list(meta.recipients),
        "mail_options": list(meta.mail_options),
        "received_at": meta.received_at,
        "peer": meta.peer,
        "helo": meta.helo,
    }


class _Parsed(NamedTuple):
    message: EmailMessage
    parts_omitted: int
    headers_omitted: int


def _parse(raw: bytes) -> _Parsed:
    """The message as the stdlib reads it, and what was left out unread.

    Header fields after the first ``MAX_HEADERS`` are dropped before parsing (but for
    the ``Content-`` and ``MIME-Version`` ones, which say how to read the body). The body
    is read header only (one part) if it may nest deeper than the stdlib parser can
    recurse (:func:`relay.gmail.mime.nesting_problem`); else it is cut before the
    delimiter line of body part ``MAX_PARTS + 1`` (the parser notes the missing close
    delimiters as defects and reads the rest as usual).
    """
    raw, headers_omitted = _trim_header(raw, MAX_HEADERS)
    raw = shorten_content_fields(raw, MAX_FIELD)  # parsed anew on every access, ~65 each
    header_only = nesting_problem(raw) is not None
    parts_omitted = 0
    if not header_only:
        raw, parts_omitted = _cut(raw, MAX_PARTS)
    parser = email.parser.BytesParser(policy=email.policy.default)
    message = parser.parsebytes(raw, headersonly=header_only)
    assert isinstance(message, EmailMessage)
    return _Parsed(message, parts_omitted, headers_omitted)


def _trim_header(raw: bytes, limit: int) -> tuple[bytes, int]:
    """``raw`` with header fields after the first ``limit`` dropped (the MIME ones
    stay), and how many were dropped."""
    end = _HEADER_END.search(raw)
    head = raw[: end.start()] if end else raw
    fields = _FIELD_START.split(head)
    if len(fields) <= limit:
        return raw, 0
    kept = fields[:limit] + [f for f in fields[limit:] if f[:12].lower().startswith(_MIME_FIELDS)]
    rest = raw[end.start() :] if end else b""
    return b"\r\n".join(kept) + rest, len(fields) - len(kept)


def _cut(raw: bytes, limit: int) -> tuple[bytes, int]:
    """``raw`` up to the opening delimiter line of body part ``limit + 1`` (of any
    boundary it declares), and the number of body parts after that point."""
    boundaries = {match[1] or match[2] for match in _BOUNDARY.finditer(raw)}
    if not boundaries:
        return raw, 0
    names = b"|".join(re.escape(name) for name in sorted(boundaries, key=len, reverse=True))
    opening = re.compile(rb"^--(?:" + names + rb")[ \t]*\r?$", re.MULTILINE)
    starts = [match.start() for match in opening.finditer(raw)]
    if len(starts) <= limit:
        return raw, 0
    return raw[: starts[limit]], len(starts) - limit


def _leaves(message: Message) -> list[Message]:
    return [part for part in message.walk() if not part.is_multipart()]


def _body(message: EmailMessage, subtype: str) -> Message | None:
    try:
        return message.get_body(preferencelist=(subtype,))
    except (KeyError, ValueError, LookupError):
        return None


def _part(number: int, leaf: Message, body: bool) -> Part:
    payload = leaf.get_payload(decode=True)
    try:
        filename = leaf.get_filename() or ""
    except (ValueError, LookupError):
        filename = ""
    return Part(
        number=number,
        content_type=leaf.get_content_type(),
        filename=filename,
        disposition=leaf.get_content_disposition() or "",
        content_id=str(leaf.get("content-id", "")).strip().strip("<>"),
        size=len(payload) if isinstance(payload, bytes) else 0,
        body=body,
    )


def _text(part: Message) -> str:
    payload = part.get_payload(decode=True)
    data = payload if isinstance(payload, bytes) else b""
    try:
        text = data.decode(part.get_content_charset() or "utf-8", "replace")
    except LookupError:  # an unknown charset name
        text = data.decode("utf-8", "replace")
    return text.replace("\r\n", "\n")


def _header(message: EmailMessage, name: str, value: str) -> tuple[str, str]:
    """The header decoded (RFC 2047, unfolded), or unfolded as it stands if it does not
    decode or is longer than :data:`MAX_FIELD`."""
    try:
        if len(value) <= MAX_FIELD:
            value = str(message.policy.header_fetch_parse(name, value))
        else:
            value = " ".join(value.split())
    except (ValueError, LookupError, TypeError, IndexError, AttributeError):
        value = " ".join(value.split())
    return name, value.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
