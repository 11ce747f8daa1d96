"""Raw header fields: split a message, find, replace and write fields, keeping bytes as received.

A field that cleanup does not change is written back byte for byte: no unfolding, no
re-encoding, no re-generation through the ``email`` package.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from relay.cleanup.lines import normalise_line_ends

__all__ = [
    "Field",
    "MalformedMessage",
    "find",
    "join_message",
    "make_field",
    "normalise_line_ends",
    "parse_fields",
    "read_header",
    "replace",
    "split_message",
    "text_of",
]

_NAME = re.compile(rb"([\x21-\x39\x3b-\x7e]+)[ \t]*:")
_LINE = re.compile(rb"[^\n]*\n|[^\n]+$")
_FOLD_AT = 78
_FOLD_POINTS = re.compile(r"(?<=[^ \t])(?=[ \t]+[^ \t])")


class MalformedMessage(ValueError):
    """The bytes are not a message cleanup can take apart; it is passed on unchanged."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Field:
    """One header field: its name as written and its raw bytes, CRLF and folding included."""

    name: str
    raw: bytes

    @property
    def key(self) -> str:
        """The case-folded name, for lookups."""
        return self.name.lower()

    @property
    def value(self) -> bytes:
        """The raw value after the colon, unfolded and stripped."""
        _, _, value = self.raw.partition(b":")
        return re.sub(rb"\r\n(?=[ \t])", b"", value).strip(b" \t\r\n")


def split_message(message: bytes) -> tuple[bytes, bytes, bytes]:
    """Split into (header block, separator, body); the separator is the empty line or ``b""``."""
    if message.startswith(b"\r\n"):
        return b"", b"\r\n", message[2:]
    head, sep, body = message.partition(b"\r\n\r\n")
    if not sep:
        return message, b"", b""
    return head + b"\r\n", b"\r\n", body


def parse_fields(head: bytes) -> tuple[Field, ...]:
    """Cut a header block (each line ending in CRLF) into fields.

    Raises :class:`MalformedMessage` for a line that is neither a field nor a continuation.
    """
    fields, rest = _take_fields(head)
    if rest:
        if rest[:1] in (b" ", b"\t"):
            raise MalformedMessage("the header block starts with a continuation line")
        raise MalformedMessage(f"not a header line: {rest.splitlines(keepends=True)[0][:40]!r}")
    return fields


def read_header(message: bytes) -> tuple[tuple[Field, ...], bytes, bytes]:
    """Split a message into (fields, separator, body) the way Postfix cleanup and the
    stdlib parser read it: the header section ends at the empty line, or at the first
    line that is neither a header field nor a continuation (an 8-bit field name, a line
    without a colon, a continuation before any field). That line starts the body and the
    separator is then ``b""``.
    """
    head, separator, body = split_message(message)
    fields, rest = _take_fields(head)
    return (fields, b"", rest + separator + body) if rest else (fields, separator, body)


def _take_fields(head: bytes) -> tuple[tuple[Field, ...], bytes]:
    """The fields at the start of ``head`` and the rest from the first line that is not one.

    Each field's lines are joined once at the end: linear time however often it is folded.
    """
    fields: list[tuple[str, list[bytes]]] = []
    offset = 0
    for line in _LINE.findall(head):
        if line[:1] in (b" ", b"\t") and fields:
            fields[-1][1].append(line)
        elif match := _NAME.match(line):
            fields.append((match.group(1).decode("ascii"), [line]))
        else:
            break
        offset += len(line)
    return tuple(Field(name=name, raw=b"".join(lines)) for name, lines in fields), head[offset:]


def join_message(fields: tuple[Field, ...], separator: bytes, body: bytes) -> bytes:
    """The message bytes from its fields, the empty line and the body."""
    return b"".join(field.raw for field in fields) + separator + body


def find(fields: tuple[Field, ...], name: str) -> tuple[Field, ...]:
    """Every field called ``name`` (case-insensitive), in order."""
    key = name.lower()
    return tuple(field for field in fields if field.key == key)


def text_of(field: Field) -> str | None:
    """The unfolded value as text; ``None`` if it is not valid UTF-8."""
    try:
        return field.value.decode("utf-8")
    except UnicodeDecodeError:
        return None


def replace(
    fields: tuple[Field, ...], name: str, new: Field | None, *, after: str = ""
) -> tuple[Field, ...]:
    """Put ``new`` where the first ``name`` field was and drop the others.

    A field not there before goes after the last ``after`` field, else at the end;
    ``new=None`` removes every ``name`` field.
    """
    key = name.lower()
    out: list[Field] = []
    placed = new is None
    for field in fields:
        if field.key != key:
            out.append(field)
        elif not placed:
            out.append(new)  # type: ignore[arg-type]
            placed = True
    if not placed:
        anchors = [i for i, field in enumerate(out) if field.key == after.lower()]
        index = anchors[-1] + 1 if anchors else len(out)
        if index and not out[index - 1].raw.endswith(b"\n"):  # a last line without CRLF
            out[index - 1] = Field(name=out[index - 1].name, raw=out[index - 1].raw + b"\r\n")
        out.insert(index, new)  # type: ignore[arg-type]
    return tuple(out)


def make_field(name: str, value: str) -> Field:
    """A new field ``Name: value``, folded at spaces to about 78 characters a line.

    ``value`` must already be 7-bit header text (see :mod:`relay.cleanup.rfc2047`); any
    CR or LF in it is replaced by a space, so a value can never start a new header line.
    """
    value = re.sub(r"[\r\n]", " ", value)
    return Field(name=name, raw=_fold(name, value).encode("utf-8") + b"\r\n")


def _fold(name: str, value: str) -> str:
    """Break before white space so lines stay near 78 characters; unfolding undoes it."""
    first, *rest = _FOLD_POINTS.split(value)
    lines = [f"{name}: {first}"]
    for token in rest:
        if len(lines[-1]) + len(token) > _FOLD_AT:
            lines.append(token)
        else:
            lines[-1] += token
    return "\r\n".join(lines)
