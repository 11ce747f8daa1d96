"""One captured message taken apart for reading: headers, text, HTML and parts (pure).

Parts are the leaves of the MIME tree, numbered from 0 in document order; the text and
HTML bodies are parts too (``body``), everything else is an attachment or inline file.
"""

from __future__ import annotations

import email.parser
import email.policy
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from email.message import EmailMessage, Message
from typing import Any

from relay.capture.timeline import timeline
from relay.gmail.mime import nesting_problem

__all__ = ["Contents", "Part", "contents", "detail", "link_inline_parts", "part_payload"]

_CID = re.compile(r"cid:([^\"'\s)>]+)", re.IGNORECASE)


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

    @property
    def attachments(self) -> tuple[Part, ...]:
        """The parts that are not the text or HTML body."""
        return tuple(part for part in self.parts if not part.body)


def contents(raw: bytes) -> Contents:
    """Take ``raw`` apart; malformed pieces come out as well as they decode."""
    message = _parse(raw)
    text_part = _body(message, "plain")
    html_part = _body(message, "html")
    parts = tuple(
        _part(number, leaf, leaf is text_part or leaf is html_part)
        for number, leaf in enumerate(_leaves(message))
    )
    return Contents(
        headers=tuple(_header(message, name, value) for name, value in message.raw_items()),
        text=_text(text_part) if text_part is not None else None,
        html=_text(html_part) if html_part is not None else None,
        parts=parts,
    )


def detail(item: Mapping[str, Any], raw: bytes, meta: Mapping[str, Any]) -> dict[str, Any]:
    """Everything the message view shows: the list ``item`` plus headers, text, HTML,
    attachments, envelope, rewrite trace, filter results, delivery timeline, and what relay
    mode would have refused (capture mode kept it; ``original_kept``: raw shows it as sent)."""
    parts = contents(raw)
    return {
        **item,
        "headers": [list(header) for header in parts.headers],
        "text": parts.text,
        "html": parts.html,
        "attachments": [part.as_dict() for part in parts.attachments],
        "envelope": {
            name: meta.get(name)
            for name in ("sender", "recipients", "mail_options", "received_at", "peer", "helo")
        },
        "trace": [{"option": option, "change": change} for option, change in meta.get("trace", ())],
        "filters": meta.get("filters") or {},
        "timeline": timeline(meta),
        "relay_refusals": meta.get("relay_refusals") or [],
        "original_kept": bool(meta.get("original_kept")),
    }


def part_payload(raw: bytes, number: int) -> tuple[Part, bytes] | None:
    """Part ``number`` and its decoded bytes, or None if there is no such part."""
    for index, leaf in enumerate(_leaves(_parse(raw))):
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


def _parse(raw: bytes) -> EmailMessage:
    """The message as the stdlib reads it; header only (the body one part) if it may nest
    deeper than the stdlib parser can recurse (:func:`relay.gmail.mime.nesting_problem`)."""
    parser = email.parser.BytesParser(policy=email.policy.default)
    message = parser.parsebytes(raw, headersonly=nesting_problem(raw) is not None)
    assert isinstance(message, EmailMessage)
    return message


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
    """The header decoded (RFC 2047, unfolded), or as it stands if it does not decode."""
    try:
        value = str(message.policy.header_fetch_parse(name, value))
    except (ValueError, LookupError, TypeError, IndexError, AttributeError):
        value = " ".join(value.split())
    return name, value.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
