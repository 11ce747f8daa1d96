"""What the sendmail command does to its input before submitting it (pure: bytes in, bytes out)."""

from __future__ import annotations

import re
from email.parser import BytesHeaderParser
from email.policy import compat32
from email.utils import formataddr, getaddresses

__all__ = ["header_recipients", "read_message", "with_from_name", "without_header"]

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


def header_recipients(message: bytes) -> tuple[str, ...]:
    """The addresses in the To, Cc and Bcc headers (``sendmail -t``), in order, once each."""
    headers = BytesHeaderParser(policy=compat32).parsebytes(_head(message))
    values = [value for name in ("To", "Cc", "Bcc") for value in headers.get_all(name, [])]
    return tuple(dict.fromkeys(address for _, address in getaddresses(values) if address))


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


def with_from_name(message: bytes, sender: str, name: str) -> bytes:
    """Add ``From: name <sender>`` (``sendmail -F``) when the message has no From header."""
    headers = BytesHeaderParser(policy=compat32).parsebytes(_head(message))
    if headers.get("From") is not None:
        return message
    field = formataddr((name, sender), charset="utf-8")
    return f"From: {field}\r\n".encode("ascii") + message
