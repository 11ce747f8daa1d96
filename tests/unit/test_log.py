"""JSON log lines: the fields of a Postfix-style line, one JSON object per event."""

from __future__ import annotations

import io
import json
import logging

import pytest

from relay.log import line_fields, log_delivery, log_event, logger, setup_logging

QID = "18E0A1B2C3D4E5F6A7"


def test_delivery_line_fields() -> None:
    line = (
        f"{QID}: to=<b@x.org>, relay=up.example[192.0.2.1]:587, delay=0.42, attempts=1, "
        "dsn=2.0.0, status=sent (250 2.0.0 OK, id=abc (queued))"
    )
    assert line_fields(line) == {
        "queue_id": QID,
        "to": "b@x.org",
        "relay": "up.example[192.0.2.1]:587",
        "delay": "0.42",
        "attempts": "1",
        "dsn": "2.0.0",
        "status": "sent",
        "reply": "250 2.0.0 OK, id=abc (queued)",
    }


def test_receipt_line_fields() -> None:
    line = f"{QID}: from=<>, size=812, nrcpt=2, client=[127.0.0.1]:50000"
    assert line_fields(line) == {
        "queue_id": QID,
        "from": "",
        "size": "812",
        "nrcpt": "2",
        "client": "[127.0.0.1]:50000",
    }


def test_lines_without_a_queue_id_have_no_fields() -> None:
    assert line_fields("smtp: listening on 127.0.0.1:2525") == {}


@pytest.fixture
def captured(monkeypatch: pytest.MonkeyPatch):
    stream = io.StringIO()
    monkeypatch.setattr("sys.stderr", stream)
    setup_logging(fmt="json")
    yield stream
    logger.handlers[:] = []


def test_json_format_is_one_object_per_line(captured: io.StringIO) -> None:
    logger.info("%s: removed", QID)
    logger.warning('reload: refused: bad "quote"\nsecond line')
    first, second = (json.loads(line) for line in captured.getvalue().splitlines())
    assert first["level"] == "info" and first["queue_id"] == QID
    assert first["message"] == f"{QID}: removed" and isinstance(first["pid"], int)
    assert second["level"] == "warning" and second["message"].endswith("second line")
    assert logging.getLogger("notify-relay").propagate is False


def test_events_carry_their_fields_and_read_as_before(captured: io.StringIO) -> None:
    """The fields travel with the call (``extra=``), so a sender the line parser would
    cut at its ``>`` arrives whole; the text rendering is the Postfix line as before."""
    sender = '"a>b"@example.org'
    pairs = {"from": sender, "size": 812, "nrcpt": 2, "client": "[127.0.0.1]:50000"}
    log_event(logging.INFO, QID, pairs)
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
    receipt, delivery = (json.loads(line) for line in captured.getvalue().splitlines())
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
