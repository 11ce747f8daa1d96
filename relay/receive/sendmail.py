"""What the sendmail command does to its input before submitting it (pure: bytes in, bytes out)."""

from __future__ import annotations

import re
from email.parser import BytesHeaderParser
from email.policy import compat32
from email.utils import formataddr

from relay.cleanup.fields import MalformedMessage, find, parse_fields, split_message, text_of
from relay.cleanup.mailbox import mailboxes, parse_address_list

__all__ = [
    "UnreadableHeader",
    "header_recipients",
    "read_message",
    "with_missing_headers",
    "without_header",
]

_LINE_END = re.compile(rb"\r\n|\r|\n")
_LONE_DOT = re.compile(rb"(?:^|\r?\n)\.\r?(?:\n|$)")


def read_message(data: bytes, *, dot_ends: bool) -> bytes:
    """The message in ``data`` with CRLF line endings, ending in CRLF.

    Programs that call sendmail write LF (Trac writes the platform's line ending); the
    SMTP listener refuses bare LF, so every line ending becomes CRLF here. Without ``-i``
    a line holding only ``.`` ends the message, as in sendmail; with ``-i`` it is text.
    """
    if dot_ends:
        match = _LONE_DOT.search(data)
        if match:
            data = data[: match.start()] + (b"\n" if match.start() else b"")
    message = _LINE_END.sub(b"\r\n", data)
    return message if not message or message.endswith(b"\r\n") else message + b"\r\n"


def _head(message: bytes) -> bytes:
    end = message.find(b"\r\n\r\n")
    return message if end < 0 else message[: end + 2]


class UnreadableHeader(ValueError):
    """The header block, or a To, Cc or Bcc field in it, cannot be read unambiguously."""


def header_recipients(message: bytes) -> tuple[str, ...]:
    """The addresses in the To, Cc and Bcc headers (``sendmail -t``), in order, once each.

    Each field is parsed strictly, as cleanup parses address headers
    (:func:`relay.cleanup.mailbox.parse_address_list`): a value a lenient parser would have
    to guess at (``alice@example.org)<evil@attacker.test>``, which ``getaddresses`` on an
    unpatched Python reads as two addresses: CVE-2023-27043) raises
    :class:`UnreadableHeader` instead of naming a recipient nobody meant.
    """
    head, _, _ = split_message(message)
    try:
        fields = parse_fields(head)
    except MalformedMessage as exc:
        raise UnreadableHeader(f"cannot read the header block: {exc}") from None
    found: list[str] = []
    for field in (field for name in ("To", "Cc", "Bcc") for field in find(fields, name)):
        text = text_of(field)
        items = parse_address_list(text) if text is not None else None
        if items is None:
            shown = field.value[:200].decode("utf-8", "backslashreplace")
            raise UnreadableHeader(f"cannot read the addresses in {field.name}: {shown!r}")
        found += [mailbox.address for mailbox in mailboxes(items)]
    return tuple(dict.fromkeys(found))


def without_header(message: bytes, name: str) -> bytes:
    """``message`` without any ``name:`` header field, folded continuation lines included."""
    head, body = _head(message), message[len(_head(message)) :]
    kept: list[bytes] = []
    dropping = False
    prefix = name.lower().encode("ascii") + b":"
    for line in head.splitlines(keepends=True):
        if not line.startswith((b" ", b"\t")):
            dropping = line.lower().startswith(prefix)
        if not dropping:
            kept.append(line)
    return b"".join(kept) + body


def with_missing_headers(
    message: bytes, *, sender: str, name: str | None, date: str, message_id: str
) -> bytes:
    """Add ``From: name <sender>``, ``Date`` and ``Message-ID`` where the message has none.

    Postfix's cleanup adds the same three to mail submitted with sendmail; ``sendmail -F``
    gives the name. The caller makes ``date`` and ``message_id`` (this module is pure).
    """
    headers = BytesHeaderParser(policy=compat32).parsebytes(_head(message))
    missing = {
        "From": formataddr((name or "", sender), charset="utf-8"),
        "Date": date,
        "Message-ID": message_id,
    }
    added = "".join(f"{key}: {value}\r\n" for key, value in missing.items() if key not in headers)
    return added.encode() + message
