"""Postfix-style log lines: the queue id first, then ``key=value`` pairs ops can grep.

``setup_logging(fmt="json")`` writes the same events as one JSON object per line for log
shippers. A line's data travels with the call as :class:`Fields` (``extra=fields(...)``),
never read back from the text: the JSON form has exactly the fields the call passed.
:func:`log_event` renders a Postfix ``key=value`` line from its fields.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from typing import Literal, TypedDict, Unpack

__all__ = [
    "Fields",
    "fields",
    "log_delivery",
    "log_event",
    "logger",
    "one_line",
    "setup_logging",
]

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


_PREFIX = "notify-relay[%(process)d]: "


class _TextFormatter(logging.Formatter):
    """One physical line per event (a traceback follows on lines of its own)."""

    def formatMessage(self, record: logging.LogRecord) -> str:
        safe = logging.makeLogRecord({**record.__dict__, "message": one_line(record.message)})
        return super().formatMessage(safe)


class _JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, pid, message and the fields of the call."""

    def format(self, record: logging.LogRecord) -> str:
        data = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S%z"),
            "level": record.levelname.lower(),
            "pid": record.process,
            "message": record.getMessage(),
            **getattr(record, "fields", {}),
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


class Fields(TypedDict, total=False):
    """The data a log line carries: each key is a field of the JSON form (documented in
    docs/reference/logs-and-metrics.md), so a misspelt one is a type error."""

    queue_id: str  # the ids of a batch, separated by spaces
    from_: str  # "from": a Python keyword
    to: str
    size: int
    nrcpt: int
    client: str
    relay: str
    delay: str  # seconds since receipt, as Postfix writes them ("0.42")
    attempts: int
    dsn: str
    status: str
    reply: str  # rendered last, in parentheses, by log_event
    command: str
    reason: str
    limit: int
    user: str
    mechanism: str
    failures: int
    stress: str
    connections: int
    timeout: float
    note: str
    path: str
    listen: str
    url: str
    upstream: str
    tls: str
    certificate: str
    settings: str
    host: str
    port: str
    action: str
    moved_to: str
    incoming: int
    deferred: int
    retry_in: float
    account: str
    until: str
    used: str
    rules: int
    added: int
    moved: int
    removed: int
    webhook: str
    event: str
    loop: str
    process: str  # a split relay's process: receive.1, deliver.0
    process_pid: int


def _values(given: Fields) -> dict[str, str]:
    """``given`` as JSON fields: keys without the trailing ``_`` of ``from_``, values as
    text (seconds as ``%g``)."""
    return {
        key.rstrip("_"): f"{value:g}" if isinstance(value, float) else str(value)
        for key, value in given.items()
    }


def fields(**given: Unpack[Fields]) -> dict[str, dict[str, str]]:
    """The ``extra=`` of a log call with data:
    ``logger.info("%s: removed", qid, extra=fields(queue_id=qid))``."""
    return {"fields": _values(given)}


#: Fields shown in angle brackets in the text, as Postfix shows addresses.
_ADDRESSES = frozenset({"from", "to"})


def log_event(level: int, queue_id: str, /, **pairs: Unpack[Fields]) -> None:
    """Log ``QUEUEID: key=value, ... (reply)`` from ``pairs`` in their order (a ``reply``
    last, in parentheses), with the queue id and the pairs as the event's fields."""
    values = _values(pairs)
    reply = values.pop("reply", None)
    text = ", ".join(
        f"{key}=<{value}>" if key in _ADDRESSES else f"{key}={value}"
        for key, value in values.items()
    )
    if reply is not None:
        text = f"{text} ({reply})"
        values["reply"] = reply
    logger.log(level, "%s: %s", queue_id, text, extra={"fields": {"queue_id": queue_id, **values}})


def log_delivery(
    queue_id: str,
    rcpt: str,
    *,
    relay: str,
    delay: float,
    attempts: int,
    dsn: str,
    status: str,
    reply: str,
) -> None:
    """One line per recipient and attempt, in Postfix's shape (info when sent, else warning).

    ``QUEUEID: to=<a@x>, relay=host[ip]:port, delay=0.42, attempts=1, dsn=2.0.0, status=sent (...)``
    """
    level = logging.INFO if status == "sent" else logging.WARNING
    log_event(
        level,
        queue_id,
        to=rcpt,
        relay=relay,
        delay=f"{delay:.2f}",
        attempts=attempts,
        dsn=dsn,
        status=status,
        reply=reply,
    )
