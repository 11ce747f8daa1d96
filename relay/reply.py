"""SMTP replies: the codes the relay compares or sends, by name, and one reply value.

As aiosmtplib's ``SMTPStatus``: logic says ``ReplyCode.COMPLETED``, never a bare 250.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass

from relay.log import one_line

__all__ = ["Reply", "ReplyClass", "ReplyCode"]

_ENHANCED = re.compile(r"^([245])\.(\d{1,3})\.(\d{1,3})\b")


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

    The text is kept as one line (:func:`~relay.log.one_line`): the lines of a multi-line reply
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
