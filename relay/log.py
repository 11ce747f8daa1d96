"""Postfix-style log lines: the queue id first, then ``key=value`` pairs ops can grep."""

from __future__ import annotations

import logging
import sys

from relay.deliver.outcome import Reply, Status

__all__ = ["delivery_line", "logger", "setup_logging"]

logger = logging.getLogger("notify-relay")


def setup_logging(level: int = logging.INFO) -> None:
    """Send the relay's log lines to stderr, one line per event."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s notify-relay[%(process)d]: %(message)s"))
    logger.handlers[:] = [handler]
    logger.setLevel(level)
    logger.propagate = False


def delivery_line(
    queue_id: str,
    rcpt: str,
    *,
    relay: str,
    delay: float,
    attempts: int,
    reply: Reply,
    status: Status,
) -> str:
    """One line per recipient and attempt, in Postfix's shape.

    ``QUEUEID: to=<a@x>, relay=host[ip]:port, delay=0.42, attempts=1, dsn=2.0.0, status=sent (...)``
    """
    return (
        f"{queue_id}: to=<{rcpt}>, relay={relay}, delay={delay:.2f}, attempts={attempts}, "
        f"dsn={reply.dsn}, status={status.value} ({reply})"
    )
