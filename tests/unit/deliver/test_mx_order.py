"""MX ordering (RFC 5321 section 5.1) and null MX (RFC 7505), pure."""

from __future__ import annotations

import random

from relay.deliver.mx import MailHosts, order_mx


def test_hosts_come_by_preference():
    records = [(20, "b.example"), (10, "a.example"), (30, "c.example")]
    assert order_mx(records) == ("a.example", "b.example", "c.example")


def test_equal_preferences_are_shuffled():
    records = [(10, f"mx{n}.example") for n in range(6)] + [(5, "first.example")]
    orders = {order_mx(records, random.Random(seed)) for seed in range(20)}
    assert len(orders) > 1 and all(order[0] == "first.example" for order in orders)


def test_a_lone_dot_is_a_null_mx():
    assert order_mx([(0, ".")]) == ()
    assert MailHosts("example.com", null_mx=True).refusal().code == 556


def test_refusals_name_the_domain_and_a_dns_failure_is_temporary():
    nxdomain = MailHosts("example.cmo", nxdomain=True).refusal()
    assert (nxdomain.code, nxdomain.dsn) == (550, "5.1.2") and "example.cmo" in nxdomain.text
    assert MailHosts("example.com", failure="timed out").refusal().code == 451
    assert MailHosts("example.com", ("mx.example.com",)).refusal() is None
