"""JSON log lines: the fields of a Postfix-style line, one JSON object per event."""

from __future__ import annotations

import io
import json
import logging

import pytest

from relay.log import line_fields, logger, setup_logging

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
