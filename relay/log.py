"""Postfix-style log lines: the queue id first, then ``key=value`` pairs ops can grep.

``setup_logging(fmt="json")`` writes the same events as one JSON object per line for log
shippers, with the queue id and the ``key=value`` pairs of a line as fields of their own.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from relay.deliver.outcome import Reply, Status

__all__ = ["delivery_line", "line_fields", "logger", "one_line", "setup_logging"]

logger = logging.getLogger("notify-relay")

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


_QUEUE_ID = re.compile(r"^([0-9A-F]{18}): ")
_PAIR = re.compile(r"(?:^|, )([a-z_]+)=(<[^>]*>|[^,\s]+)")
_REPLY = re.compile(r" \((.*)\)$")


def line_fields(message: str) -> dict[str, str]:
    """The queue id, ``key=value`` pairs and final ``(reply)`` of a Postfix-style line.

    ``"1A2B...: to=<b@x>, dsn=2.0.0, status=sent (250 ok)"`` gives ``{"queue_id": "1A2B...",
    "to": "b@x", "dsn": "2.0.0", "status": "sent", "reply": "250 ok"}``; other lines, none.
    """
    match = _QUEUE_ID.match(message)
    if match is None:
        return {}
    rest = message[match.end() :]
    reply = _REPLY.search(rest) if "status=" in rest else None
    if reply is not None:
        rest = rest[: reply.start()]
    fields = {key: value.strip("<>") for key, value in _PAIR.findall(rest)}
    if reply is not None:
        fields["reply"] = reply.group(1)
    return {"queue_id": match.group(1), **fields}


_PREFIX = "notify-relay[%(process)d]: "


class _TextFormatter(logging.Formatter):
    """One physical line per event (a traceback follows on lines of its own)."""

    def formatMessage(self, record: logging.LogRecord) -> str:
        safe = logging.makeLogRecord({**record.__dict__, "message": one_line(record.message)})
        return super().formatMessage(safe)


class _JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, pid, message and the line's fields."""

    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        data = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S%z"),
            "level": record.levelname.lower(),
            "pid": record.process,
            "message": message,
            **line_fields(message),
        }
        if record.exc_info:
            data["exception"] = self.formatException(record.exc_info)
        return json.dumps(data, ensure_ascii=False)


def setup_logging(level: int = logging.INFO, fmt: Literal["text", "json"] = "text") -> None:
    """Send the relay's log lines to stderr, one line per event, as text or JSON."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        _JsonFormatter() if fmt == "json" else _TextFormatter(f"%(asctime)s {_PREFIX}%(message)s")
    )
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
