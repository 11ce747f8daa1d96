"""SMTP replies: the codes the relay compares or sends, by name; one reply value; and
:func:`one_line`, which makes what a peer says safe for a one-line log or listing.

As aiosmtplib's ``SMTPStatus``: logic says ``ReplyCode.COMPLETED``, never a bare 250.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass

__all__ = ["Reply", "ReplyClass", "ReplyCode", "one_line"]

_ENHANCED = re.compile(r"^([245])\.(\d{1,3})\.(\d{1,3})\b")
_LINE_BREAKS = re.compile(r"\s*(?:\r\n|[\n\r\v\f\x1c-\x1e\x85\u2028\u2029])\s*")
#: C0 and C1 controls, and the bidirectional overrides that make a line read otherwise.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def one_line(text: str) -> str:
    """``text`` (a remote reply, a client's word) safe for a one-line log or listing.

    Continuation lines are joined with a space, as Postfix does with multi-line replies,
    and other control characters are escaped (``\\x1b``), so that what a peer says can
    neither split a line nor start one of its own.
    """
    joined = _LINE_BREAKS.sub(" ", text.strip())
    return _CONTROL.sub(_escape, joined)


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


class ReplyCode(enum.IntEnum):
    """The basic reply codes (RFC 5321 section 4.2.3) the relay compares or sends."""

    COMPLETED = 250
    LOCAL_ERROR = 451
    INSUFFICIENT_STORAGE = 452
    AUTH_FAILED = 535
    UNAVAILABLE = 550
    MAILBOX_NAME_INVALID = 553

    def line(self, dsn: str, text: str) -> str:
        """The reply line ``"<code> <dsn> <text>"`` (``dsn``: the enhanced status code)."""
        return f"{self.value} {dsn} {text}"


class ReplyClass(enum.IntEnum):
    """The first digit of a reply code: what kind of answer it is."""

    POSITIVE = 2
    TRANSIENT = 4
    PERMANENT = 5


@dataclass(frozen=True, slots=True)
class Reply:
    """An upstream reply, or a local failure to get one (``code`` 0, e.g. refused connection).

    The text is kept as one line (:func:`one_line`): the lines of a multi-line reply
    joined, control characters escaped, wherever it is logged or shown later.
    """

    code: int
    text: str

    def __post_init__(self) -> None:
        object.__setattr__(self, "text", one_line(self.text))

    @property
    def kind(self) -> int:
        """The code's first digit, to compare with :class:`ReplyClass` (0: no reply)."""
        return self.code // 100

    @property
    def dsn(self) -> str:
        """The enhanced status code (RFC 3463), from the text or derived from the basic code."""
        match = _ENHANCED.match(self.text)
        if match:
            return match.group(0)
        return f"{self.code // 100}.0.0" if self.code else "4.4.1"

    def __str__(self) -> str:
        return f"{self.code} {self.text}" if self.code else self.text
