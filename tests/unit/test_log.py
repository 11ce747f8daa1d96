"""JSON log lines: the fields of a Postfix-style line, one JSON object per event."""

from __future__ import annotations

import logging
import re
from pathlib import Path

from relay.log import Fields, fields, log_delivery, log_event, logger

QID = "18E0A1B2C3D4E5F6A7"
DOCS = Path(__file__).resolve().parents[2] / "docs/reference/logs-and-metrics.md"


def test_json_fields_are_the_data_of_the_call_not_read_from_the_text(json_log) -> None:
    """A line that looks like a Postfix line but passed no fields has none; a path holding
    ``, status=`` stays one field."""
    logger.info("%s: to=<b@x.org>, status=sent (250 ok)", QID)
    path = "/srv/mail, status=sent"
    logger.info("%s: captured in %s", QID, path, extra=fields(queue_id=QID, path=path))
    bare, captured = json_log()
    assert set(bare) == {"time", "level", "pid", "message"}
    assert {key: captured[key] for key in set(captured) - set(bare)} == {
        "queue_id": QID,
        "path": path,
    }


def test_fields_are_written_as_text_under_their_json_names() -> None:
    given = fields(from_="a@x.org", nrcpt=2, retry_in=0.30000000000000004, reason="x=y, z")
    assert given == {
        "fields": {"from": "a@x.org", "nrcpt": "2", "retry_in": "0.3", "reason": "x=y, z"}
    }


def test_json_format_is_one_object_per_line(json_log) -> None:
    logger.info("%s: removed", QID, extra=fields(queue_id=QID))
    logger.warning('reload: refused: bad "quote"\nsecond line')
    first, second = json_log()
    assert first["level"] == "info" and first["queue_id"] == QID
    assert first["message"] == f"{QID}: removed" and isinstance(first["pid"], int)
    assert second["level"] == "warning" and second["message"].endswith("second line")
    assert logging.getLogger("notify-relay").propagate is False


def test_events_carry_their_fields_and_read_as_before(json_log) -> None:
    """The fields travel with the call (``extra=``), so a sender the line parser would
    cut at its ``>`` arrives whole; the text rendering is the Postfix line as before."""
    sender = '"a>b"@example.org'
    log_event(logging.INFO, QID, from_=sender, size=812, nrcpt=2, client="[127.0.0.1]:50000")
    log_delivery(
        QID,
        "b@x.org",
        relay="up.example[192.0.2.1]:587",
        delay=0.4213,
        attempts=1,
        dsn="4.3.0",
        status="deferred",
        reply="451 4.3.0 busy (try later)",
    )
    receipt, delivery = json_log()
    assert (
        receipt["message"] == f"{QID}: from=<{sender}>, size=812, nrcpt=2, client=[127.0.0.1]:50000"
    )
    assert receipt["from"] == sender and receipt["size"] == "812" and receipt["queue_id"] == QID
    assert delivery["level"] == "warning"
    assert delivery["message"] == (
        f"{QID}: to=<b@x.org>, relay=up.example[192.0.2.1]:587, delay=0.42, attempts=1, "
        "dsn=4.3.0, status=deferred (451 4.3.0 busy (try later))"
    )
    assert {key: delivery[key] for key in ("to", "delay", "status", "reply")} == {
        "to": "b@x.org",
        "delay": "0.42",
        "status": "deferred",
        "reply": "451 4.3.0 busy (try later)",
    }


def test_every_field_is_documented_and_every_documented_field_exists() -> None:
    logs = DOCS.read_text().split("## Metrics")[0]
    rows = re.findall(r"^\| (`[a-z_]+`(?:, `[a-z_]+`)*) \|", logs, re.MULTILINE)
    documented = {name for row in rows for name in re.findall(r"`([a-z_]+)`", row)}
    assert documented == {key.rstrip("_") for key in Fields.__annotations__}
