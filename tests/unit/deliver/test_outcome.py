"""Reply classification (pure)."""

from __future__ import annotations

import pytest

from relay.deliver.outcome import classify, holds_queue
from relay.model import Status
from relay.reply import Reply


@pytest.mark.parametrize(
    ("code", "text", "status"),
    [
        (250, "2.0.0 OK", Status.SENT),
        (451, "4.3.0 try later", Status.DEFERRED),
        (421, "4.7.0 Try again later, closing connection", Status.DEFERRED),
        (454, "4.7.0 Too many login attempts", Status.DEFERRED),
        (550, "5.4.5 Daily user sending limit exceeded", Status.DEFERRED),
        (535, "5.7.8 Username and Password not accepted", Status.DEFERRED),
        (550, "5.1.1 The email account that you tried to reach does not exist", Status.BOUNCED),
        (554, "Transaction failed", Status.BOUNCED),
        (0, "connect to x: Connection refused", Status.DEFERRED),
    ],
)
def test_classify(code, text, status):
    assert classify(Reply(code, text)) is status


def test_dsn_comes_from_the_text_or_the_code():
    assert Reply(550, "5.1.1 no such user").dsn == "5.1.1"
    assert Reply(554, "Transaction failed").dsn == "5.0.0"
    assert Reply(0, "refused").dsn == "4.4.1"


def test_only_credential_failures_hold_the_queue():
    assert holds_queue(Reply(535, "5.7.8 bad credentials"))
    assert not holds_queue(Reply(550, "5.4.5 quota"))
