"""STARTTLS, TLS and AUTH (security reference B.7-B.14) on both edges.

The listener offers neither STARTTLS nor AUTH (it serves Trac on loopback or a unix
socket); the first test keeps that true, so the listener cases below stay "not applicable"
until someone adds them. The upstream cases run against a misbehaving aiosmtpd with
trustme certificates: the relay must never send AUTH or mail unless the TLS it asked for
is up with the certificate it trusts.
"""

from __future__ import annotations

import datetime
import hashlib
import ssl

import pytest
import trustme
from helpers import port_of

from .flow import queued, submit, wait_for
from .misbehave import (
    Upstream,
    starttls_refused,
    starttls_then_garbage,
    starttls_then_silence,
    starttls_with_injected_plaintext,
)
from .wire import Wire, code

NOT_APPLICABLE = "not applicable: the listener offers no STARTTLS/AUTH"
CREDENTIALS = ("relay@example.org", "s3cret-app-password")
MESSAGE = b"From: trac@example.org\r\nTo: dev@example.org\r\nSubject: tls\r\n\r\nhello\r\n"


# --- the listener -------------------------------------------------------------------------


async def test_listener_offers_no_starttls_and_no_auth(relay_for, upstream):
    relay = await relay_for(upstream)
    wire = await Wire.open(port_of(relay))
    assert code(await wire.reply()) == 220
    await wire.send(b"EHLO client.test\r\n")
    keywords = {line[4:].split()[0].upper() for line in await wire.lines()}
    assert not keywords & {b"STARTTLS", b"AUTH"}
    assert (await wire.command(b"STARTTLS\r\n")).startswith(b"454")
    assert (await wire.command(b"AUTH PLAIN AGEAYg==\r\n")).startswith(b"538 5.7.11")
    await wire.close()


@pytest.mark.skip(reason=NOT_APPLICABLE + " (B.7: commands pipelined after STARTTLS)")
def test_commands_pipelined_after_starttls_are_discarded():
    """Would send STARTTLS, EHLO and MAIL in one write, handshake, then RCPT: expect 503."""


@pytest.mark.skip(reason=NOT_APPLICABLE + " (B.13: AUTH before TLS)")
def test_auth_is_offered_only_after_starttls():
    """Would check AUTH is absent before STARTTLS and ``AUTH PLAIN`` gets 538 5.7.11."""


@pytest.mark.skip(reason=NOT_APPLICABLE + " (B.14: AUTH brute force on the listener)")
def test_auth_brute_force_is_cut_off_and_never_logged():
    """Would send 50 wrong AUTH PLAIN: 535 each, then 421 4.7.0; the secret never logged."""


# --- the upstream -------------------------------------------------------------------------


@pytest.fixture
async def tls_relay(relay_for, ca_file, password_file):
    """Start the relay towards a STARTTLS+AUTH upstream; ``**upstream`` adds config keys."""

    async def start(server: Upstream, **extra):
        return await relay_for(
            server,
            upstream={
                "tls": "starttls",
                "username": CREDENTIALS[0],
                "password_file": str(password_file),
                "ca_file": str(ca_file),
                "timeout": 2,
                **extra,
            },
        )

    return start


def tls_upstream(context: ssl.SSLContext, **misbehaviour) -> Upstream:
    return Upstream(tls="starttls", context=context, credentials=CREDENTIALS, **misbehaviour)


def server_context_for(ca: trustme.CA, *names: str, **cert_options) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert(*names, **cert_options).configure_cert(context)
    return context


async def deferred_without_a_word(relay, server: Upstream) -> str:
    """Wait for the message to be deferred; nothing (not even AUTH) reached the upstream."""
    (queue_id,) = (await wait_for(lambda: queued(relay).get("deferred")))[:1]
    assert server.messages == [] and server.auth_attempts == []
    return relay.manager.spool.read_state(queue_id).last_reply


async def test_starttls_response_injection_is_discarded(tls_relay, server_context, caplog):
    # B.8: "220 go" arrives with a fake EHLO reply in the same plaintext write
    with tls_upstream(server_context, starttls=starttls_with_injected_plaintext) as server:
        relay = await tls_relay(server)
        await submit(port_of(relay), MESSAGE)
        (received,) = await wait_for(lambda: server.messages)
        assert received.tls and received.auth == CREDENTIALS[0]
        assert server.ehlo_count == 2  # one before STARTTLS, one inside TLS
        assert server.auth_attempts == [(CREDENTIALS[0], True)]


@pytest.mark.parametrize(
    "misbehaviour", [starttls_then_garbage, starttls_then_silence], ids=["garbage", "stall"]
)
async def test_failed_tls_handshake_defers_and_sends_nothing(
    tls_relay, server_context, misbehaviour
):
    # B.11 and a handshake that breaks: deferred within the timeout, worker free again
    with tls_upstream(server_context, starttls=misbehaviour) as server:
        relay = await tls_relay(server)
        await submit(port_of(relay), MESSAGE)
        reply = await deferred_without_a_word(relay, server)
        assert "failed in the STARTTLS handshake" in reply


async def test_starttls_refused_defers_and_sends_no_auth(tls_relay, server_context):
    # B.9, the 454 variant (the variant without STARTTLS in EHLO is test_delivery's)
    with tls_upstream(server_context, starttls=starttls_refused) as server:
        relay = await tls_relay(server)
        await submit(port_of(relay), MESSAGE)
        reply = await deferred_without_a_word(relay, server)
        assert reply.startswith("454 4.7.0")


@pytest.mark.parametrize(
    "certificate",
    [
        {"names": ("wrong.example",)},
        {"names": ("127.0.0.1",), "not_after": datetime.datetime(2020, 1, 1)},
    ],
    ids=["wrong-hostname", "expired"],
)
async def test_bad_certificate_defers_and_sends_no_auth(tls_relay, ca, certificate):
    # B.10 (the untrusted self-signed case is test_delivery's)
    options = {key: value for key, value in certificate.items() if key != "names"}
    if options:
        options["not_before"] = datetime.datetime(2019, 1, 1)
    context = server_context_for(ca, *certificate["names"], **options)
    with tls_upstream(context) as server:
        relay = await tls_relay(server)
        await submit(port_of(relay), MESSAGE)
        reply = await deferred_without_a_word(relay, server)
        assert "certificate verify failed" in reply


def fingerprint(context_cert: trustme.LeafCert) -> str:
    der = ssl.PEM_cert_to_DER_cert(context_cert.cert_chain_pems[0].bytes().decode())
    return ":".join(f"{byte:02X}" for byte in hashlib.sha256(der).digest())


async def test_changed_certificate_is_refused_when_pinned(tls_relay, ca):
    pinned = ca.issue_cert("127.0.0.1", "localhost")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    pinned.configure_cert(context)
    with tls_upstream(context) as server:
        relay = await tls_relay(server, fingerprint=fingerprint(pinned))
        await submit(port_of(relay), MESSAGE)
        (first,) = await wait_for(lambda: server.messages)
        assert first.tls
        # same CA, same names, valid: only the pin tells it apart (a MITM with a CA cert)
        server.context = server_context_for(ca, "127.0.0.1", "localhost")
        await submit(port_of(relay), MESSAGE.replace(b"tls", b"second"))
        (queue_id,) = (await wait_for(lambda: queued(relay).get("deferred")))[:1]
        state = relay.manager.spool.read_state(queue_id)
        assert "not the pinned one" in state.last_reply
        assert len(server.messages) == 1 and len(server.auth_attempts) == 1
