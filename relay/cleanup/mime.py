"""The MIME tree of a message, cut from its raw bytes so that it can be written back exactly.

Only structure is parsed (content types, boundaries, transfer encodings); everything else
stays bytes. :func:`serialise` of an untouched :func:`parse` result gives the input back.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, replace
from email.message import Message

from relay.cleanup.fields import Field, MalformedMessage, find, parse_fields, split_message

__all__ = ["MAX_DEPTH", "Entity", "parse", "serialise"]

MAX_DEPTH = 50  # deeper nesting is refused (the stdlib parser recurses without a bound)


@dataclass(frozen=True, slots=True, kw_only=True)
class Entity:
    """One MIME entity: its header fields and either a raw body or parts.

    For a multipart, ``body`` is the preamble, ``delimiters[i]`` the exact delimiter line
    before ``parts[i]`` (with the CRLF that precedes it), ``close`` the closing delimiter
    line and ``epilogue`` what follows it. For ``message/rfc822``, ``parts`` holds the one
    enclosed message and ``body`` is empty.
    """

    fields: tuple[Field, ...]
    separator: bytes
    body: bytes
    content_type: str
    charset: str | None = None
    parts: tuple[Entity, ...] = ()
    delimiters: tuple[bytes, ...] = ()
    close: bytes = b""
    epilogue: bytes = b""

    @property
    def is_multipart(self) -> bool:
        """True for a multipart/* entity with parsed parts."""
        return self.content_type.startswith("multipart/")

    @property
    def is_enclosure(self) -> bool:
        """True for a message/rfc822 entity whose enclosed message was parsed."""
        return self.content_type == "message/rfc822" and bool(self.parts)

    @property
    def transfer_encoding(self) -> str:
        """The declared Content-Transfer-Encoding, lower-cased (``7bit`` if absent); the
        first of several, as the stdlib and mail readers take it."""
        found = find(self.fields, "Content-Transfer-Encoding")
        if not found:
            return "7bit"
        return found[0].value.decode("ascii", "replace").strip().lower()

    def with_parts(self, parts: tuple[Entity, ...]) -> Entity:
        """The same entity with other parts."""
        return replace(self, parts=parts)


def parse(message: bytes, *, default_type: str = "text/plain", depth: int = 0) -> Entity:
    """Parse raw message bytes (CRLF line ends) into an :class:`Entity` tree.

    Raises :class:`~relay.cleanup.fields.MalformedMessage` when the structure cannot be
    followed: a header block that is not one, a multipart without its boundary or closing
    delimiter, or nesting deeper than :data:`MAX_DEPTH`.
    """
    if depth > MAX_DEPTH:
        raise MalformedMessage(f"MIME nesting deeper than {MAX_DEPTH}")
    head, separator, body = split_message(message)
    fields = parse_fields(head) if head else ()
    content_type, boundary, charset = _content_type(fields, default_type)
    entity = Entity(
        fields=fields, separator=separator, body=body, content_type=content_type, charset=charset
    )
    if content_type.startswith("multipart/"):
        return _parse_multipart(entity, boundary, depth)
    if content_type == "message/rfc822" and entity.transfer_encoding in ("7bit", "8bit", "binary"):
        return replace(entity, body=b"", parts=(parse(body, depth=depth + 1),))
    return entity


def serialise(entity: Entity) -> bytes:
    """The raw bytes of ``entity`` (the inverse of :func:`parse`)."""
    head = b"".join(field.raw for field in entity.fields) + entity.separator
    if entity.is_enclosure:
        return head + serialise(entity.parts[0])
    if not entity.is_multipart:
        return head + entity.body
    inner = b"".join(
        delimiter + serialise(part)
        for delimiter, part in zip(entity.delimiters, entity.parts, strict=True)
    )
    return head + entity.body + inner + entity.close + entity.epilogue


def _content_type(fields: tuple[Field, ...], default: str) -> tuple[str, str | None, str | None]:
    """(type, boundary, charset) of the entity; an unreadable Content-Type means ``default``.

    The first of several Content-Type fields counts, as for the stdlib and mail readers.
    """
    found = find(fields, "Content-Type")
    if not found:
        return default, None, None
    header = Message()
    header.set_default_type(default)
    header["Content-Type"] = found[0].value.decode("ascii", "replace")
    return header.get_content_type(), header.get_boundary(), header.get_content_charset()


def _parse_multipart(entity: Entity, boundary: str | None, depth: int) -> Entity:
    if not boundary:
        raise MalformedMessage(f"{entity.content_type} without a boundary")
    body = entity.body
    lines = _delimiter_lines(body, b"--" + boundary.encode("ascii", "replace"))
    closing = next((i for i, (_, _, last) in enumerate(lines) if last), None)
    if closing is None or closing == 0:
        raise MalformedMessage(f"{entity.content_type}: no parts or no closing boundary")
    lines = lines[: closing + 1]
    default = "message/rfc822" if entity.content_type == "multipart/digest" else "text/plain"
    parts = tuple(
        parse(body[opening[1] : following[0]], default_type=default, depth=depth + 1)
        for opening, following in itertools.pairwise(lines)
    )
    return replace(
        entity,
        body=body[: lines[0][0]],
        parts=parts,
        delimiters=tuple(body[start:end] for start, end, _ in lines[:-1]),
        close=body[lines[-1][0] : lines[-1][1]],
        epilogue=body[lines[-1][1] :],
    )


def _delimiter_lines(body: bytes, marker: bytes) -> list[tuple[int, int, bool]]:
    """(start, end, closing) of each delimiter line in ``body``: ``marker`` at the start of
    the body or after a CRLF (taken into the line), an optional ``--`` (closing), blanks,
    then CRLF (taken) or the end of the body (before a last LF, like a regex's ``$``).

    ``bytes.find`` jumps from one candidate to the next: linear in the body with a small
    constant, where a regular expression starting with an alternation tries every offset.
    """
    found: list[tuple[int, int, bool]] = []
    start = 0 if body.startswith(marker) else body.find(b"\r\n" + marker)
    while start >= 0:
        cursor = start + len(marker) + (0 if start == 0 and body.startswith(marker) else 2)
        closing = body.startswith(b"--", cursor)
        cursor += 2 if closing else 0
        while body[cursor : cursor + 1] in (b" ", b"\t"):
            cursor += 1
        if body.startswith(b"\r\n", cursor):
            cursor += 2
        elif cursor < len(body) and body[cursor:] != b"\n":
            start = body.find(b"\r\n" + marker, start + 1)
            continue
        found.append((start, cursor, closing))
        start = body.find(b"\r\n" + marker, cursor)
    return found
