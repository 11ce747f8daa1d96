"""MX delivery and the RCPT-time domain check, against a DNS server on 127.0.0.1."""

from __future__ import annotations

import ssl

import aiosmtplib
import pytest
from dnsserver import DnsServer
from helpers import eventually, port_of, submit
from upstream import FakeUpstream

from relay.queue.spool import QueueState

ZONE = {
    "example.test MX": ["10 down.example.test.", "20 mx.example.test."],
    "down.example.test A": ["127.0.0.2"],  # nothing listens there: refused
    "mx.example.test A": ["127.0.0.1"],
    "implicit.test A": ["127.0.0.1"],
    "nullmx.test MX": ["0 ."],
    "nomail.test TXT": ['"v=spf1 -all"'],
}


def mx(upstream: FakeUpstream, **extra: object) -> dict[str, object]:
    return {"mx": True, "port": upstream.port, "timeout": 2, **extra}


@pytest.fixture
def dns_server():
    with DnsServer(ZONE, silent=frozenset({"slow.test"})) as server:
        yield server


async def test_mail_goes_to_the_mx_found_through_dns_in_preference_order(
    make_config, start_relay, dns_server, caplog
):
    with FakeUpstream() as target:
        relay = await start_relay(make_config(upstream=mx(target), dns=dns_server.config()))
        await submit(relay, ["bob@example.test", "carol@implicit.test"])
        received = await eventually(lambda: len(target.messages) == 2 and target.messages)
        assert sorted(r for message in received for r in message.recipients) == [
            "bob@example.test",
            "carol@implicit.test",
        ]
        assert f"connect to down.example.test[127.0.0.2]:{target.port}" in caplog.text
        assert f"relay=mx.example.test[127.0.0.1]:{target.port}" in caplog.text
        assert f"relay=implicit.test[127.0.0.1]:{target.port}" in caplog.text
        asked = dns_server.queries
        assert asked.index(("example.test", "MX")) < asked.index(("mx.example.test", "A"))


async def test_a_null_mx_fails_at_once(make_config, start_relay, dns_server):
    with FakeUpstream() as target:
        config = make_config(
            upstream=mx(target), dns=dns_server.config(check_recipient_domains=False)
        )
        relay = await start_relay(config)
        await submit(relay, ["bob@nullmx.test"])
        spool = relay.manager.spool
        (queue_id,) = await eventually(lambda: spool.ids(QueueState.FAILED))
        state = spool.read_state(queue_id)
        assert state.attempts == 1 and state.last_reply.startswith("556 5.1.10 nullmx.test")
        assert target.messages == []


async def test_opportunistic_starttls_encrypts_without_checking_the_name(
    make_config, start_relay, dns_server, server_context
):
    with FakeUpstream(tls="starttls", context=server_context) as target:
        relay = await start_relay(make_config(upstream=mx(target), dns=dns_server.config()))
        await submit(relay, ["bob@example.test"])
        (received,) = await eventually(lambda: target.messages)
        assert received.tls  # the certificate names 127.0.0.1, not mx.example.test


async def test_verified_tls_needs_a_certificate_for_the_mx_name(
    make_config, start_relay, dns_server, server_context, ca, ca_file
):
    with FakeUpstream(tls="starttls", context=server_context) as wrong:
        config = make_config(
            upstream=mx(wrong, mx_tls="verify", ca_file=ca_file), dns=dns_server.config()
        )
        relay = await start_relay(config)
        await submit(relay, ["bob@example.test"])
        await eventually(lambda: relay.manager.spool.ids(QueueState.DEFERRED))
        assert wrong.messages == []
        await relay.stop()
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("mx.example.test").configure_cert(context)
    with FakeUpstream(tls="starttls", context=context) as right:
        config = make_config(
            upstream=mx(right, mx_tls="verify", ca_file=ca_file), dns=dns_server.config()
        )
        relay = await start_relay(config)
        (received,) = await eventually(lambda: right.messages)  # the deferred one, now
        assert received.tls and received.recipients == ["bob@example.test"]


async def rcpt(relay, address: str) -> tuple[int, str]:
    async with aiosmtplib.SMTP(hostname="127.0.0.1", port=port_of(relay)) as client:
        await client.mail("trac@example.org")
        reply = await client.execute_command(b"RCPT", f"TO:<{address}>".encode())
        return reply.code, reply.message


async def test_rcpt_refuses_a_domain_that_cannot_take_mail(make_config, start_relay, dns_server):
    with FakeUpstream() as target:
        relay = await start_relay(make_config(upstream=mx(target), dns=dns_server.config()))
        code, text = await rcpt(relay, "bob@example.cmo")
        assert code == 550 and text == "5.1.2 recipient domain example.cmo does not exist"
        code, text = await rcpt(relay, "bob@nomail.test")
        assert (code, text.split()[0]) == (550, "5.1.2") and "nomail.test" in text
        assert (await rcpt(relay, "bob@nullmx.test"))[0] == 556
        assert (await rcpt(relay, "bob@example.test"))[0] == 250
        assert "recipient domain" not in (await rcpt(relay, "short-name"))[1]  # cleanup's call
        before = len(dns_server.queries)
        assert (await rcpt(relay, "BOB@Example.CMO"))[0] == 550
        assert len(dns_server.queries) == before  # answers are kept for their TTL


async def test_a_dns_timeout_never_refuses_mail(make_config, start_relay, dns_server):
    with FakeUpstream() as target:
        relay = await start_relay(make_config(upstream=mx(target), dns=dns_server.config()))
        code, text = await rcpt(relay, "bob@slow.test")
        assert code == 451 and text.startswith("4.4.3") and "slow.test" in text


async def test_a_dns_timeout_may_accept_and_delivery_checks_again(
    make_config, start_relay, dns_server
):
    with FakeUpstream() as target:
        config = make_config(upstream=mx(target), dns=dns_server.config(on_timeout="accept"))
        relay = await start_relay(config)
        assert (await rcpt(relay, "bob@slow.test"))[0] == 250
        await submit(relay, ["bob@slow.test"])
        spool = relay.manager.spool
        (queue_id,) = await eventually(lambda: spool.ids(QueueState.DEFERRED))
        assert spool.read_state(queue_id).last_reply.startswith("451 4.4.3")


async def test_the_check_is_off_for_smarthost_mail_unless_asked(
    make_config, start_relay, dns_server
):
    with FakeUpstream() as target:
        smarthost = {"host": "127.0.0.1", "port": target.port, "tls": "none"}
        relay = await start_relay(make_config(upstream=smarthost, dns=dns_server.config()))
        assert (await rcpt(relay, "bob@example.cmo"))[0] == 250
        await relay.stop()
        config = make_config(
            upstream=smarthost, dns=dns_server.config(check_recipient_domains=True)
        )
        relay = await start_relay(config)
        assert (await rcpt(relay, "bob@example.cmo"))[0] == 550
