"""Turn an upstream reply into a delivery status (pure).

Some 5xx replies are temporary in practice and must not bounce mail: Gmail's
``550 5.4.5`` daily quota, and bad credentials (``535 5.7.8``), which are the operator's
problem and hold the whole queue instead of failing every message.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass

from relay.log import one_line

__all__ = ["Reply", "Status", "classify", "holds_queue"]

_ENHANCED = re.compile(r"^([245])\.(\d{1,3})\.(\d{1,3})\b")

#: Enhanced codes that mean "over quota / rate limited": defer whatever the basic code says.
_QUOTA = frozenset({"5.4.5", "4.7.0", "4.7.28", "4.5.3"})


class Status(enum.Enum):
    """The delivery status of a recipient, named as in Postfix's log lines."""

    SENT = "sent"
    DEFERRED = "deferred"
    BOUNCED = "bounced"


@dataclass(frozen=True, slots=True)
class Reply:
    """An upstream reply, or a local failure to get one (``code`` 0, e.g. refused connection).

    The text is kept as one line (:func:`~relay.log.one_line`): the lines of a multi-line
    reply joined, control characters escaped, wherever it is logged or shown later.
    """

    code: int
    text: str

    def __post_init__(self) -> None:
        object.__setattr__(self, "text", one_line(self.text))

    @property
    def dsn(self) -> str:
        """The enhanced status code (RFC 3463), from the text or derived from the basic code."""
        match = _ENHANCED.match(self.text)
        if match:
            return match.group(0)
        return f"{self.code // 100}.0.0" if self.code else "4.4.1"

    def __str__(self) -> str:
        return f"{self.code} {self.text}" if self.code else self.text


def classify(reply: Reply) -> Status:
    """The status a recipient gets for ``reply``."""
    if 200 <= reply.code < 300:
        return Status.SENT
    if reply.code >= 500 and reply.dsn not in _QUOTA and not holds_queue(reply):
        return Status.BOUNCED
    return Status.DEFERRED


#: Enhanced codes that refuse the credentials: 5.7.8, and Microsoft 365's "basic
#: authentication is not supported" (550 5.7.30) and "authentication unsuccessful" (5.7.139).
_CREDENTIALS = frozenset({"5.7.8", "5.7.30", "5.7.139"})


def holds_queue(reply: Reply) -> bool:
    """True when the upstream refused the relay's credentials: retrying each message is futile."""
    return reply.code == 535 or reply.dsn in _CREDENTIALS
