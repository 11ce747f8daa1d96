"""Listener policy: who may connect, which addresses pass (pure)."""

from __future__ import annotations

import ipaddress

import pytest

from relay.receive.policy import address_problem, peer_allowed

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
