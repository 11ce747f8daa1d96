"""Transfer encodings: rewrite text parts for ``mime_encoding``, downgrade 8-bit for delivery.

Only the Content-Transfer-Encoding field and the encoded body of a leaf part change; the
decoded content stays identical byte for byte, and every other byte of the message is
written back as it came.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import replace

from relay.cleanup.fields import (
    Field,
    MalformedMessage,
    find,
    make_field,
    normalise_line_ends,
    text_of,
)
from relay.cleanup.fields import replace as replace_field
from relay.cleanup.lines import line_safe
from relay.cleanup.mailbox import format_address_list, parse_address_list
from relay.cleanup.mime import Entity, parse, serialise
from relay.cleanup.options import MimeEncoding
from relay.cleanup.rfc2047 import encode_unstructured
from relay.model import TraceEntry

__all__ = ["decode_body", "downgrade_8bit", "encode_qp", "is_7bit", "transcode"]

Trace = tuple[TraceEntry, ...]

_IDENTITY = ("7bit", "8bit", "binary")
_QP = "quoted-printable"
_BLANKS = b" \t\n\r\x0b\x0c"  # what a regex's \s matches in bytes
_ADDRESS_FIELDS = frozenset(
    {"from", "sender", "reply-to", "to", "cc", "bcc"}
    | {"resent-from", "resent-sender", "resent-to", "resent-cc"}
)
_CONTENT_FIELDS = frozenset({"content-type", "content-transfer-encoding"})
_STRUCTURED = frozenset(
    {"date", "message-id", "in-reply-to", "references", "received", "return-path", "mime-version"}
)


def is_7bit(data: bytes) -> bool:
    """True if ``data`` has no octet above 127."""
    return data.isascii()


def encode_qp(content: bytes) -> bytes:
    """Quoted-printable with CRLF as the only hard line break; any other CR or LF is
    encoded (``=0D``/``=0A``), so decoding gives ``content`` back exactly.
    """
    return b"\r\n".join(
        binascii.b2a_qp(line, istext=False).replace(b"=\n", b"=\r\n")
        for line in content.split(b"\r\n")
    )


def _encode_base64(content: bytes) -> bytes:
    return base64.encodebytes(content).replace(b"\n", b"\r\n")


def decode_body(entity: Entity) -> bytes | None:
    """The decoded content of a leaf; ``None`` for an unknown encoding or broken base64."""
    encoding = entity.transfer_encoding
    if encoding in _IDENTITY:
        return entity.body
    if encoding == _QP:
        return binascii.a2b_qp(entity.body)
    if encoding == "base64":
        try:
            return binascii.a2b_base64(entity.body.translate(None, _BLANKS), strict_mode=True)
        except binascii.Error:
            return None
    return None


def _encode(content: bytes, encoding: str) -> bytes:
    if encoding == _QP:
        return encode_qp(content)
    return _encode_base64(content) if encoding == "base64" else content


def _smaller(content: bytes) -> str:
    """QP or base64, whichever is shorter for ``content`` (QP on a tie)."""
    return _QP if len(encode_qp(content)) <= len(_encode_base64(content)) else "base64"


def _choose(entity: Entity, content: bytes, mode: str) -> str | None:
    """The new transfer encoding of a leaf under ``mode``; ``None`` keeps the current one."""
    current, body = entity.transfer_encoding, entity.body
    is_text = entity.content_type.startswith("text/")
    fallback = _QP if is_text else "base64"
    if mode == "downgrade":
        return None if is_7bit(body) and line_safe(body) else fallback
    if not is_text or mode == "keep":
        return fallback if current in _IDENTITY and not line_safe(body) else None
    plain = line_safe(content)
    if mode in ("qp", _QP, "base64"):
        wanted = "base64" if mode == "base64" else _QP
    elif plain and is_7bit(content):
        wanted = "7bit"
    elif mode == "none":
        wanted = "8bit" if plain else _QP
    else:
        wanted = _smaller(content)
    if wanted == "7bit" and current == "7bit" and plain:
        return None
    if wanted == current and (current == "8bit" or (is_7bit(body) and line_safe(body))):
        return None
    return wanted


def _set_encoding(entity: Entity, encoding: str, content: bytes, *, top: bool) -> Entity:
    fields = replace_field(
        entity.fields,
        "Content-Transfer-Encoding",
        make_field("Content-Transfer-Encoding", encoding),
    )
    if top and not find(fields, "MIME-Version"):
        fields = (make_field("MIME-Version", "1.0"), *fields)
    separator = entity.separator or b"\r\n"
    return replace(entity, fields=fields, separator=separator, body=_encode(content, encoding))


def _encode_headers(fields: tuple[Field, ...], where: str) -> tuple[tuple[Field, ...], Trace]:
    """RFC 2047-encode fields that carry raw UTF-8 (address fields mailbox by mailbox)."""
    out: list[Field] = []
    trace: list[TraceEntry] = []  # a list: += on a tuple per field is quadratic
    for field in fields:
        new = _encoded_field(field) if not is_7bit(field.raw) else field
        if new is None:
            note = f"{where}: {field.name} left 8-bit: cannot be encoded safely"
            trace.append(TraceEntry("mime_encoding", note))
            new = field
        elif new is not field:
            trace.append(TraceEntry("mime_encoding", f"{where}: {field.name} RFC 2047-encoded"))
        out.append(new)
    return tuple(out), tuple(trace)


def _encoded_field(field: Field) -> Field | None:
    text = text_of(field)
    if text is None or field.key in _STRUCTURED or field.key.startswith("content-"):
        return None
    if field.key in _ADDRESS_FIELDS:
        items = parse_address_list(text)
        return None if items is None else make_field(field.name, format_address_list(items))
    # unstructured text keeps trailing blanks (RFC 5322 3.2.5), which Field.value strips
    unfolded = field.raw.partition(b":")[2].rstrip(b"\r\n").replace(b"\r\n", b"")
    trailing = unfolded[len(unfolded.rstrip(b" \t")) :].decode("ascii")
    return make_field(field.name, encode_unstructured(text + trailing))


def _doubled(entity: Entity) -> str | None:
    """The content field an entity gives more than once (readers differ on which counts)."""
    seen: set[str] = set()
    for field in entity.fields:
        if field.key in _CONTENT_FIELDS:
            if field.key in seen:
                return field.name
            seen.add(field.key)
    return None


def _walk(entity: Entity, mode: str, where: str, *, top: bool) -> tuple[Entity, Trace]:
    trace: Trace = ()
    if mode in ("base64", "qp", _QP, "auto", "downgrade"):
        fields, trace = _encode_headers(entity.fields, where)
        entity = replace(entity, fields=fields)
    doubled = _doubled(entity)
    if doubled is not None:  # re-encoding could change what some reader shows
        note = f"{where}: left as it is, parts and all: {doubled} given more than once"
        return entity, (*trace, TraceEntry("mime_encoding", note))
    if entity.is_multipart or entity.is_enclosure:
        parts, notes = [], list(trace)  # a list: += on a tuple per part is quadratic
        for number, part in enumerate(entity.parts, start=1):
            label = f"{where}.{number}" if where != "message" else f"part {number}"
            new, more = _walk(part, mode, label if entity.is_multipart else where, top=False)
            parts.append(new)
            notes.extend(more)
        return entity.with_parts(tuple(parts)), tuple(notes)
    content = decode_body(entity)
    if content is None:
        note = f"{where}: left as it is: cannot decode {entity.transfer_encoding}"
        return entity, (*trace, TraceEntry("mime_encoding", note))
    wanted = _choose(entity, content, mode)
    if wanted is None or (entity.separator == b"" and not entity.body):
        return entity, trace
    change = f"{where} ({entity.content_type}): {entity.transfer_encoding} -> {wanted}"
    option = "mime_encoding" if mode != "keep" else "line length"
    return _set_encoding(entity, wanted, content, top=top), (*trace, TraceEntry(option, change))


def transcode(message: bytes, mode: MimeEncoding | str) -> tuple[bytes, Trace]:
    """Apply ``mime_encoding`` ``mode`` to every text part of ``message`` (CRLF line ends).

    ``keep`` still re-encodes a part with a line over 998 octets. Raises
    :class:`~relay.cleanup.fields.MalformedMessage` if the MIME structure cannot be followed.
    """
    if mode == "keep" and line_safe(message):
        return message, ()  # nothing to re-encode: skip taking the MIME tree apart
    entity, trace = _walk(parse(message), mode, "message", top=True)
    return (serialise(entity), trace) if trace else (message, ())


def downgrade_8bit(message: bytes) -> bytes:
    """Make ``message`` 7-bit for an upstream without 8BITMIME.

    8-bit or over-long text parts become quoted-printable, other such parts base64, and
    raw UTF-8 header fields RFC 2047 encoded words; decoded content is unchanged. A message
    whose structure cannot be followed comes back as it was.
    """
    try:
        rewritten, _ = transcode(normalise_line_ends(message), "downgrade")
    except MalformedMessage:
        return message
    return rewritten
