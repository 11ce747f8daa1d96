"""Routes: which upstreams a recipient goes through, in fail-over order (pure)."""

from __future__ import annotations

from relay.deliver.options import UpstreamConfig
from relay.deliver.routing import chain, split, via_mx

LOCAL = UpstreamConfig(name="local", host="mail.internal", recipients=("*@internal.example",))
ALERTS = UpstreamConfig(name="alerts", host="alerts.example", senders=("alerts@*",))
GMAIL = UpstreamConfig(name="gmail", host="smtp.gmail.com")
BACKUP = UpstreamConfig(name="backup", host="smtp.backup.example")
MX = UpstreamConfig(mx=True)
ALL = (LOCAL, ALERTS, GMAIL, BACKUP)


def test_mail_no_route_matches_goes_through_the_unrouted_upstreams_in_order():
    assert chain(ALL, "trac@example.org", "bob@example.com") == (GMAIL, BACKUP)


def test_a_matching_recipient_route_wins_and_does_not_fall_over_to_the_rest():
    assert chain(ALL, "trac@example.org", "Alice@Internal.Example") == (LOCAL,)


def test_a_sender_route_takes_all_its_recipients():
    assert chain(ALL, "alerts@example.org", "bob@example.com") == (ALERTS,)
    assert chain(ALL, "alerts@example.org", "a@internal.example") == (LOCAL, ALERTS)


def test_split_groups_recipients_by_chain_in_order_of_appearance():
    groups = split(ALL, "trac@example.org", ["a@internal.example", "b@x.org", "c@internal.example"])
    assert groups == [
        ((LOCAL,), ("a@internal.example", "c@internal.example")),
        ((GMAIL, BACKUP), ("b@x.org",)),
    ]


def test_via_mx_is_true_only_where_an_mx_upstream_is_in_the_chain():
    upstreams = (LOCAL, MX)
    assert via_mx(upstreams, "", "bob@example.com")
    assert not via_mx(upstreams, "", "a@internal.example")
