"""RFC 2047 encoded words: write header text that is 7-bit, unfoldable and injection-proof."""

from __future__ import annotations

import base64
import itertools
import re
from email.errors import HeaderParseError
from email.header import decode_header, make_header

__all__ = ["decode_unstructured", "encode_phrase", "encode_unstructured", "needs_encoding"]

_MAX_WORD = 75  # RFC 2047 section 2: an encoded word is at most 75 characters
_MAX_PLAIN = 900  # a longer plain token could not be folded under 998 octets
_ATEXT = re.compile(r"[A-Za-z0-9!#$%&'*+\-/=?^_`{|}~]+")
_ENCODED_LOOKALIKE = re.compile(r"=\?.*\?=")
_WSP = re.compile(r"([ \t]+)")
_Q_PHRASE = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789!*+-/")
_Q_TEXT = frozenset(range(33, 127)) - frozenset(b"=?_")


def needs_encoding(token: str) -> bool:
    """True if ``token`` cannot appear as plain header text (non-ASCII, controls, lookalikes)."""
    return (
        not token.isascii()
        or not token.isprintable()
        or len(token) > _MAX_PLAIN
        or bool(_ENCODED_LOOKALIKE.search(token))
    )


def encode_unstructured(text: str) -> str:
    """Encode free text (a Subject) so that it decodes back to ``text``.

    Plain ASCII words stay readable; each run of words that needs encoding becomes encoded
    words, with the spaces inside the run carried in the encoding (decoders drop white
    space between adjacent encoded words).
    """
    tokens = _WSP.split(text)  # word, space, word, ..., word
    encode = [index % 2 == 0 and needs_encoding(token) for index, token in enumerate(tokens)]
    if not any(encode):
        return text
    for index in range(1, len(tokens) - 1, 2):
        encode[index] = encode[index - 1] and encode[index + 1]
    out = []
    for flag, group in itertools.groupby(zip(encode, tokens, strict=True), key=lambda p: p[0]):
        chunk = "".join(token for _, token in group)
        out.append(_encode_words(chunk, phrase=False) if flag else chunk)
    return "".join(out)


def encode_phrase(text: str) -> str:
    """Encode a display name: atoms as they are, else a quoted string, else encoded words."""
    words = text.split(" ")
    if all(_ATEXT.fullmatch(word) for word in words) and not _ENCODED_LOOKALIKE.search(text):
        return text
    if text.isascii() and text.isprintable() and not _ENCODED_LOOKALIKE.search(text):
        escaped = text.replace("\\", "\\\\").replace('"', '\\"')
        return f'"{escaped}"'
    return _encode_words(text, phrase=True)


def decode_unstructured(value: str) -> str | None:
    """Decode the encoded words of an unfolded header value; ``None`` if any is broken
    (unknown charset, bad base64, bytes that are not in the declared charset).
    """
    try:
        parts = decode_header(value)
        for data, charset in parts:
            if isinstance(data, bytes):
                data.decode(charset or "ascii")
        return str(make_header(parts))
    except (HeaderParseError, LookupError, ValueError):
        return None


def _encode_words(text: str, *, phrase: bool) -> str:
    """``text`` as space-separated UTF-8 encoded words of at most 75 characters each."""
    words: list[str] = []
    current = ""
    for char in text:
        candidate = current + char
        if current and len(_word(candidate, phrase=phrase)) > _MAX_WORD:
            words.append(_word(current, phrase=phrase))
            current = char
        else:
            current = candidate
    if current:
        words.append(_word(current, phrase=phrase))
    return " ".join(words)


def _word(text: str, *, phrase: bool) -> str:
    """One encoded word, B or Q, whichever is shorter."""
    data = text.encode("utf-8")
    safe = _Q_PHRASE if phrase else _Q_TEXT
    q = "".join(
        "_" if byte == 0x20 else chr(byte) if byte in safe else f"={byte:02X}" for byte in data
    )
    b = base64.b64encode(data).decode("ascii")
    return f"=?utf-8?q?{q}?=" if len(q) <= len(b) else f"=?utf-8?b?{b}?="
