"""Turn an upstream reply into a delivery status (pure).

Some 5xx replies are temporary in practice and must not bounce mail: Gmail's
``550 5.4.5`` daily quota, and bad credentials (``535 5.7.8``), which are the operator's
problem and hold the whole queue instead of failing every message.
"""

from __future__ import annotations

from relay.model import Status
from relay.reply import Reply, ReplyClass, ReplyCode

__all__ = ["classify", "holds_queue"]

#: Enhanced codes that mean "over quota / rate limited": defer whatever the basic code says.
_QUOTA = frozenset({"5.4.5", "4.7.0", "4.7.28", "4.5.3"})


def classify(reply: Reply) -> Status:
    """The status a recipient gets for ``reply``."""
    if reply.kind == ReplyClass.POSITIVE:
        return Status.SENT
    if reply.kind >= ReplyClass.PERMANENT and reply.dsn not in _QUOTA and not holds_queue(reply):
        return Status.BOUNCED
    return Status.DEFERRED


#: Enhanced codes that refuse the credentials: 5.7.8, and Microsoft 365's "basic
#: authentication is not supported" (550 5.7.30) and "authentication unsuccessful" (5.7.139).
_CREDENTIALS = frozenset({"5.7.8", "5.7.30", "5.7.139"})


def holds_queue(reply: Reply) -> bool:
    """True when the upstream refused the relay's credentials: retrying each message is futile."""
    return reply.code == ReplyCode.AUTH_FAILED or reply.dsn in _CREDENTIALS
