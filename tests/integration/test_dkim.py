"""DKIM signing end to end: what the upstream takes off the wire is verified by other
implementations (Perl's Mail::DKIM for rsa-sha256, Node's mailauth for both algorithms),
with the public keys served by the local DNS server."""

from __future__ import annotations

import asyncio
import email
import email.policy

import pytest
from dkimtools import txt, verify, write_key
from dnsserver import DnsServer
from hardening.flow import submit, upstream_section
from hardening.misbehave import Upstream
from helpers import eventually, port_of

from relay.cli.main import main

RSA = ("example.org", "nr2026", "rsa-sha256")
ED25519 = ("example.org", "ed2026", "ed25519-sha256")

TRAC = (
    b"From: Trac <trac@example.org>\r\nTo: dev@example.org\r\nSubject: #42: crash on save\r\n"
    b"Message-ID: <042.abc@example.org>\r\nX-Trac-Project: myproj\r\n\r\n"
    b"Ticket #42 (new defect)\r\n"
)
EIGHT_BIT = (
    "From: trac@example.org\r\nTo: dev@example.org\r\nSubject: Grüße\r\n"
    "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n"
    "Content-Transfer-Encoding: 8bit\r\n\r\nGrüße aus Köln\r\n"
).encode()


@pytest.fixture
def dkim(tmp_path):
    """Two keys for example.org (RSA and Ed25519), their ``dkim:`` entries and a DNS server
    (which also knows the MX host of dev.test, for MX mode)."""
    records = {"dev.test MX": ["10 mx.dev.test."], "mx.dev.test A": ["127.0.0.1"]}
    entries = []
    for domain, selector, algorithm in (RSA, ED25519):
        entry, record = write_key(tmp_path, domain, selector, algorithm)
        entries.append(entry)
        records[f"{selector}._domainkey.{domain} TXT"] = [txt(record)]
    with DnsServer(records) as server:
        yield entries, server.port


def assert_verified(message: bytes, dns_port: int) -> None:
    """Both signatures pass with the independent verifiers."""
    assert verify(message, dns_port, "perl")[RSA] == "pass"
    by_node = verify(message, dns_port, "node")
    assert by_node[ED25519] == "pass" and by_node[RSA] == "pass"


async def relay_to(upstream, make_config, start_relay, entries, **notification):
    config = make_config(
        upstream=upstream_section(upstream),
        web={"enabled": False},
        dkim=entries,
        notification=notification,
    )
    return await start_relay(config)


@pytest.mark.parametrize(
    ("message", "hide"),
    [(TRAC, ()), (EIGHT_BIT, ("8BITMIME",))],
    ids=["rewritten by cleanup", "8-bit downgraded for a 7-bit upstream"],
)
async def test_mail_is_signed_as_it_goes_out(make_config, start_relay, dkim, message, hide):
    entries, dns_port = dkim
    with Upstream(hide=hide) as upstream:
        relay = await relay_to(
            upstream,
            make_config,
            start_relay,
            entries,
            smtp_subject_prefix="[myproj]",
            list_id="My Project tickets <tickets.myproj.example.org>",
            list_unsubscribe="https://trac.example.org/myproj/prefs/notification",
            list_unsubscribe_post=True,
        )
        await submit(port_of(relay), message)
        (received,) = await eventually(lambda: upstream.messages)
    wire = received.content
    assert wire.count(b"DKIM-Signature:") == 2 and b"[myproj]" in wire
    assert b"List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n" in wire
    if hide:
        assert wire.isascii() and "BODY=8BITMIME" not in received.mail_options
        parsed = email.message_from_bytes(wire, policy=email.policy.default)
        assert parsed.get_content().rstrip() == "Grüße aus Köln"
    assert_verified(wire, dns_port)


@pytest.mark.parametrize(
    "tamper",
    [
        lambda m: m.replace(b"crash on save", b"crash on load"),
        lambda m: m.replace(b"(new defect)", b"(closed defect)"),
        lambda m: m.replace(b"From: Trac", b"From: evil@example.net\r\nFrom: Trac", 1),
    ],
    ids=["header", "body", "added From (oversigned)"],
)
async def test_a_tampered_message_fails_verification(make_config, start_relay, dkim, tamper):
    entries, dns_port = dkim
    with Upstream() as upstream:
        relay = await relay_to(upstream, make_config, start_relay, entries)
        await submit(port_of(relay), TRAC)
        (received,) = await eventually(lambda: upstream.messages)
    tampered = tamper(received.content)
    assert tampered != received.content
    assert verify(tampered, dns_port, "perl")[RSA] != "pass"
    by_node = verify(tampered, dns_port, "node")
    assert by_node[ED25519] != "pass" and by_node[RSA] != "pass"


async def test_mail_from_another_domain_is_not_signed(make_config, start_relay, dkim):
    entries, _ = dkim
    with Upstream() as upstream:
        relay = await relay_to(upstream, make_config, start_relay, entries)
        await submit(port_of(relay), TRAC.replace(b"trac@example.org", b"trac@example.net"))
        (received,) = await eventually(lambda: upstream.messages)
    assert b"DKIM-Signature" not in received.content


async def test_capture_stores_the_signed_message_and_release_signs_again(
    make_config, start_relay, dkim, tmp_path
):
    entries, dns_port = dkim
    with Upstream(hide=("8BITMIME",)) as upstream:
        release = {"allowed": ["*@example.org"], "upstream": upstream_section(upstream)}
        config = make_config(
            web={"enabled": False}, dkim=entries, capture={"path": "mail", "release": release}
        )
        relay = await start_relay(config)
        reply = await submit(port_of(relay), EIGHT_BIT)
        queue_id = reply.rsplit(" ", 1)[1]
        stored, meta = await eventually(lambda: relay.capture.read(queue_id))
        assert stored.count(b"DKIM-Signature:") == 2
        assert_verified(stored, dns_port)
        assert [change for option, change in meta.trace if option == "dkim"] == [
            "DKIM-Signature added: d=example.org s=nr2026 a=rsa-sha256",
            "DKIM-Signature added: d=example.org s=ed2026 a=ed25519-sha256",
        ]
        code = await asyncio.to_thread(
            main, ["mail", "release", "-c", str(tmp_path / "relay.yaml"), queue_id]
        )
        assert code == 0
        (received,) = upstream.messages
    wire = received.content
    # downgraded for the 7-bit upstream after capture, so signed again: the capture-time
    # signatures are replaced, not kept beside the new ones (they would fail)
    assert wire.isascii() and wire.count(b"DKIM-Signature:") == 2
    assert_verified(wire, dns_port)


async def test_mail_to_mx_hosts_is_signed_too(make_config, start_relay, dkim):
    entries, dns_port = dkim
    with Upstream() as target:
        dns = {"nameservers": ["127.0.0.1"], "port": dns_port, "timeout": 0.5}
        config = make_config(
            upstream={"mx": True, "port": target.port, "timeout": 2},
            dns=dns,
            dkim=entries,
            web={"enabled": False},
        )
        relay = await start_relay(config)
        await submit(port_of(relay), TRAC, recipients=("dev@dev.test",))
        (received,) = await eventually(lambda: target.messages)
    assert received.recipients == ["dev@dev.test"]
    assert_verified(received.content, dns_port)
