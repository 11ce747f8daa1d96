"""Raw RFC 5322 bytes -> decoded headers, body text and attachments (what Gmail indexes)."""

from __future__ import annotations

import datetime as dt
import email.errors
import email.header
import email.parser
import email.policy
import email.utils
import re
from dataclasses import dataclass
from email.message import Message
from html.parser import HTMLParser

__all__ = [
    "MAX_CONTAINERS",
    "MAX_FIELD_TEXT",
    "Attachment",
    "ParsedMail",
    "decode_words",
    "html_to_text",
    "nesting_problem",
    "parse_mail",
    "shorten_content_fields",
]

#: The stdlib parser (and ``walk``) recurse once per MIME nesting level, without a bound: a
#: message nested some 1000 deep raises RecursionError. Each level needs a multipart or
#: message Content-Type field (two levels per multipart: the parts of a multipart/digest
#: are messages without one), so with at most this many such fields a message nests at
#: most twice as deep, well inside the recursion limit. A message with more is read
#: header only (:func:`nesting_problem`).
MAX_CONTAINERS = 100
#: Characters read of a message's address fields of one name (some 4,000 addresses) and
#: of one Content- field: the stdlib parsers take time quadratic in the length beyond.
MAX_FIELD_TEXT = 100_000

_BLOCK_TAGS = frozenset(
    {"address", "article", "aside", "blockquote", "br", "dd", "div", "dl", "dt", "fieldset",
     "figcaption", "figure", "footer", "form", "h1", "h2", "h3", "h4", "h5", "h6", "header", "hr",
     "li", "main", "nav", "ol", "p", "pre", "section", "table", "tbody", "td", "tfoot", "th",
     "thead", "tr", "ul"}
)  # fmt: skip
_SPACE = re.compile(r"\s+")
#: A Content-Type field (in lower-cased bytes) and its value, continuation lines included;
#: the parser breaks lines at CR, LF and CRLF.
_CONTENT_TYPE = re.compile(rb"content-type[ \t]*:([^\r\n]*(?:(?:\r\n|\r|\n)[ \t][^\r\n]*)*)")


@dataclass(frozen=True, slots=True)
class Attachment:
    """An attachment: decoded file name, content type, disposition and decoded size."""

    filename: str
    content_type: str
    disposition: str
    size: int


@dataclass(frozen=True, slots=True)
class ParsedMail:
    """The decoded parts of one message; header names are lower-case.

    ``unread`` says why the body (text and attachments) was not read; None: it was.
    """

    headers: dict[str, list[str]]
    addresses: dict[str, list[tuple[str, str]]]
    body: str
    attachments: tuple[Attachment, ...]
    received_at: dt.datetime | None
    date: dt.datetime | None
    unread: str | None = None


_ADDRESS_HEADERS = ("from", "to", "cc", "bcc", "reply-to", "delivered-to")


def nesting_problem(raw: bytes) -> str | None:
    """Why the stdlib parser must read only the header of ``raw``; None if it may read it all.

    A cheap, conservative count of the fields that can open a nesting level (see
    :data:`MAX_CONTAINERS`); text that merely looks like one counts too.
    """
    text = raw.lower()
    containers = 0
    for match in _CONTENT_TYPE.finditer(text):
        at_line_start = match.start() == 0 or text[match.start() - 1] in b"\r\n"
        if at_line_start and (b"multipart" in match[1] or b"message" in match[1]):
            containers += 1
    if containers <= MAX_CONTAINERS:
        return None
    return f"over {MAX_CONTAINERS} multipart or message/* parts: they may nest too deep to read"


#: A Content- field (of the message or of any part) with its continuation lines.
_CONTENT_FIELD = re.compile(rb"^content-[!-9;-~]*[ \t]*:(?:[^\n]*\n[ \t])*[^\n]*", re.I | re.M)


def shorten_content_fields(raw: bytes, limit: int = MAX_FIELD_TEXT) -> bytes:
    """``raw`` with each Content- field over ``limit`` octets cut after its last parameter
    within them: the stdlib reads parameters (RFC 2231 sections above all) in time
    quadratic in their number (200,000 took 22 s to index, minutes to show)."""

    def shorten(field: re.Match[bytes]) -> bytes:
        text = field[0]
        return text if len(text) <= limit else text[:limit].rpartition(b";")[0]

    return _CONTENT_FIELD.sub(shorten, raw)


def parse_mail(raw: bytes) -> ParsedMail:
    """Decode ``raw``: RFC 2047 headers, text and HTML bodies, attachments, Received time.

    A message whose MIME structure may nest too deep (:func:`nesting_problem`) is read
    header only: no body text, no attachments, and ``unread`` says why.
    """
    unread = nesting_problem(raw)
    raw = shorten_content_fields(raw)
    parser = email.parser.BytesParser(policy=email.policy.compat32)
    message = parser.parsebytes(raw, headersonly=unread is not None)
    headers: dict[str, list[str]] = {}
    for name, value in message.raw_items():  # items() would turn raw UTF-8 into "?"
        headers.setdefault(name.lower(), []).append(_unescape(value))
    addresses = {
        name: [(decode_words(display), addr) for display, addr in _addresses(headers, name)]
        for name in _ADDRESS_HEADERS
    }
    texts: list[str] = []
    htmls: list[str] = []
    attachments: list[Attachment] = []
    for part in message.walk() if unread is None else ():
        if part.is_multipart():
            continue
        info = _attachment(part)
        if info is not None:
            attachments.append(info)
        elif part.get_content_type() == "text/plain":
            texts.append(_text(part))
        elif part.get_content_type() == "text/html":
            htmls.append(html_to_text(_text(part)))
    return ParsedMail(
        headers={name: [decode_words(v) for v in values] for name, values in headers.items()},
        addresses=addresses,
        body="\n".join(texts or htmls),
        attachments=tuple(attachments),
        received_at=_received_at(headers.get("received", [])),
        date=_date(headers.get("date", [""])[0]),
        unread=unread,
    )


def decode_words(value: str) -> str:
    """Return header ``value`` unfolded with its RFC 2047 encoded words decoded; raw UTF-8
    text (RFC 6532) beside them stays what it is."""
    try:
        chunks = [_raw_text(data, charset) for data, charset in email.header.decode_header(value)]
        decoded = str(email.header.make_header(chunks))
    except (LookupError, UnicodeError, ValueError, email.errors.MessageError):
        decoded = value  # CharsetError and HeaderParseError are MessageErrors
    return _SPACE.sub(" ", decoded).strip()


def _raw_text(data: bytes | str, charset: str | None) -> tuple[bytes | str, str | None]:
    """A chunk of :func:`email.header.decode_header`; text outside encoded words comes
    back as raw-unicode-escape bytes without a charset, which ``make_header`` would read
    as ASCII: non-ASCII text is handed on as the UTF-8 it was."""
    if charset is None and isinstance(data, bytes) and not data.isascii():
        return data.decode("raw-unicode-escape").encode("utf-8"), "utf-8"
    return data, charset


def html_to_text(html: str) -> str:
    """Return the text of ``html``: tags removed, entities decoded, blocks on their own lines."""
    stripper = _Stripper()
    stripper.feed(html)
    stripper.close()
    return "".join(stripper.chunks)


class _Stripper(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.chunks: list[str] = []
        self.hidden = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("script", "style"):
            self.hidden += 1
        elif tag in _BLOCK_TAGS:
            self.chunks.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in ("script", "style"):
            self.hidden = max(0, self.hidden - 1)
        elif tag in _BLOCK_TAGS:
            self.chunks.append("\n")

    def handle_data(self, data: str) -> None:
        if not self.hidden:
            self.chunks.append(data)


def _unescape(value: str) -> str:
    """Undo the parser's surrogate escapes of raw 8-bit (UTF-8) header bytes."""
    return value.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def _addresses(headers: dict[str, list[str]], name: str) -> list[tuple[str, str]]:
    """The addresses of the ``name`` fields, read up to :data:`MAX_FIELD_TEXT` characters
    (to the last comma before it)."""
    values, room = [], MAX_FIELD_TEXT
    for value in headers.get(name, []):
        if len(value) > room:
            values.append(value[:room].rpartition(",")[0])
            break
        values.append(value)
        room -= len(value)
    pairs = email.utils.getaddresses(values)
    return [(display, addr) for display, addr in pairs if display or addr]


def _attachment(part: Message) -> Attachment | None:
    raw_name = part.get_filename()
    filename = decode_words(_unescape(raw_name)) if raw_name else ""
    disposition = part.get_content_disposition() or ""
    inline_file = disposition == "inline" and part.get_content_maintype() != "text"
    if not (filename or disposition == "attachment" or inline_file):
        return None
    payload = part.get_payload(decode=True)
    size = len(payload) if isinstance(payload, bytes) else 0
    return Attachment(filename, part.get_content_type(), disposition, size)


def _text(part: Message) -> str:
    payload = part.get_payload(decode=True)
    data = payload if isinstance(payload, bytes) else b""
    try:
        text = data.decode(part.get_content_charset() or "utf-8", "replace")
    except LookupError:
        text = data.decode("utf-8", "replace")
    return text.replace("\r\n", "\n")


def _received_at(values: list[str]) -> dt.datetime | None:
    """Return the time stamp of the topmost Received header that has one."""
    for value in values:
        _, _, stamp = value.rpartition(";")
        when = _date(stamp)
        if when is not None:
            return when
    return None


def _date(value: str) -> dt.datetime | None:
    try:
        when = email.utils.parsedate_to_datetime(value.strip())
    except (TypeError, ValueError, IndexError):
        return None
    return when if when.tzinfo else when.replace(tzinfo=dt.UTC)
