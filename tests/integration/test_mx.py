"""MX delivery and the RCPT-time domain check, against a DNS server on 127.0.0.1."""

from __future__ import annotations

import socket
import ssl

import aiosmtplib
import pytest
from dnsserver import DnsServer
from helpers import eventually, port_of, submit
from upstream import FakeUpstream

from relay.queue.spool import QueueState
from relay.resolver import DnsConfig, Resolver

ZONE = {
    "example.test MX": ["10 down.example.test.", "20 mx.example.test."],
    "down.example.test A": ["127.0.0.2"],  # nothing listens there: refused
    "mx.example.test A": ["127.0.0.1"],
    "implicit.test A": ["127.0.0.1"],
    "nullmx.test MX": ["0 ."],
    "v6only.test AAAA": ["::1"],  # no MX, no A: the implicit MX over IPv6
    "dual.test MX": ["10 mx.dual.test."],
    "mx.dual.test A": ["127.0.0.2"],  # refused: the host's IPv6 address is next
    "mx.dual.test AAAA": ["::1"],
    "nomail.test TXT": ['"v=spf1 -all"'],
}


def mx(upstream: FakeUpstream, **extra: object) -> dict[str, object]:
    return {"mx": True, "port": upstream.port, "timeout": 2, **extra}


@pytest.fixture
def dns_server():
    with DnsServer(
        ZONE, silent=frozenset({"slow.test"}), failing=frozenset({"broken.test"})
    ) as server:
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


def _ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as sock:
            sock.bind(("::1", 0))
    except OSError:
        return False
    return True


@pytest.mark.skipif(not _ipv6_loopback(), reason="no IPv6 loopback (::1) on this machine")
async def test_aaaa_records_are_the_fallback_for_a_domain_and_for_an_mx_host(
    make_config, start_relay, dns_server, caplog
):
    with FakeUpstream(host="::1") as target:
        relay = await start_relay(make_config(upstream=mx(target), dns=dns_server.config()))
        await submit(relay, ["carol@v6only.test", "dave@dual.test"])  # the RCPT check passes
        received = await eventually(lambda: len(target.messages) == 2 and target.messages)
        assert sorted(r for message in received for r in message.recipients) == [
            "carol@v6only.test",
            "dave@dual.test",
        ]
        assert f"relay=v6only.test[::1]:{target.port}" in caplog.text
        assert f"connect to mx.dual.test[127.0.0.2]:{target.port}" in caplog.text
        assert f"relay=mx.dual.test[::1]:{target.port}" in caplog.text


async def test_answers_are_kept_for_their_ttl_and_failures_not_at_all(dns_server):
    now = [0.0]
    resolver = Resolver(DnsConfig(**dns_server.config()), clock=lambda: now[0])

    async def asked(name: str, rdtype: str) -> int:
        before = len(dns_server.queries)
        await resolver.query(name, rdtype)
        return len(dns_server.queries) - before

    assert await asked("example.test", "MX") == 1
    now[0] = 299.0  # the records' TTL is 300 s
    assert await asked("Example.Test.", "MX") == 0
    now[0] = 301.0
    assert await asked("example.test", "MX") == 1
    assert await asked("example.cmo", "MX") == 1  # NXDOMAIN: kept for the SOA's 60 s
    now[0] = 360.0
    assert await asked("example.cmo", "MX") == 0
    now[0] = 362.0
    assert await asked("example.cmo", "MX") == 1
    lookup = await resolver.query("slow.test", "MX")
    assert lookup.failure is not None and not lookup.nxdomain
    assert await asked("slow.test", "MX") >= 1  # a timeout is asked again, never remembered


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


async def test_a_dns_timeout_or_failure_never_refuses_mail(make_config, start_relay, dns_server):
    with FakeUpstream() as target:
        relay = await start_relay(make_config(upstream=mx(target), dns=dns_server.config()))
        code, text = await rcpt(relay, "bob@slow.test")
        assert code == 451 and text.startswith("4.4.3") and "slow.test" in text
        code, text = await rcpt(relay, "bob@broken.test")  # SERVFAIL: no answer either
        assert code == 451 and text.startswith("4.4.3") and "broken.test" in text


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


async def test_rcpt_refusals_are_logged_and_mx_tls_is_named_as_it_is(
    make_config, start_relay, dns_server, caplog, capsys
):
    from relay.cli.main import main

    with FakeUpstream() as target:
        config = make_config(upstream=mx(target), dns=dns_server.config())
        relay = await start_relay(config)
        assert "delivering to mx (tls=opportunistic)" in caplog.text
        assert main(["check-config", str(config.source)]) == 0
        assert "upstream mx (tls=opportunistic)" in capsys.readouterr().out
        await rcpt(relay, "bob@example.cmo")
        (line,) = [r.getMessage() for r in caplog.records if "reject: RCPT" in r.getMessage()]
        assert line.startswith("reject: RCPT from [127.0.0.1]:")
        assert line.endswith(
            ": 550 5.1.2 recipient domain example.cmo does not exist; "
            "from=<trac@example.org> to=<bob@example.cmo>"
        )
