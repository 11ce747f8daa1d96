"""Reply classification and listener policy (pure)."""

from __future__ import annotations

import ipaddress

import pytest

from relay.deliver.outcome import classify, holds_queue
from relay.model import Status
from relay.receive.policy import address_problem, peer_allowed
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


NETS = (ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("::1/128"))


@pytest.mark.parametrize(
    ("peer", "allowed"),
    [
        (("127.0.0.1", 1), True),
        (("127.5.6.7", 1), True),
        (("::1", 1, 0, 0), True),
        (("::ffff:127.0.0.1", 1, 0, 0), True),
        (("10.0.0.1", 1), False),
        (("2001:db8::1", 1, 0, 0), False),
        ("", True),  # unix socket: the file's mode decides
    ],
)
def test_peer_allowed(peer, allowed):
    assert peer_allowed(peer, NETS) is allowed


@pytest.mark.parametrize(
    "address", ["a@b\r\nRCPT TO:<c@d>", "a b@c", "a@b,c@d", "x" * 255 + "@d", "<a@b>", "a@b@c"]
)
def test_bad_addresses_are_named(address):
    assert address_problem(address)


@pytest.mark.parametrize(
    "address", ["alice", "alice@example.org", "pelé@exämple.org", '"a@b"@example.org']
)
def test_good_addresses_pass(address):
    assert address_problem(address) is None
