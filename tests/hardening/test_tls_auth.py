"""STARTTLS, TLS and AUTH (security reference B.7-B.14) on both edges.

By default the listener offers neither STARTTLS nor AUTH (it serves Trac on loopback or a
unix socket); the first test keeps that true. With ``listen_tls`` and ``listen_auth`` it
offers both, and the listener cases B.7, B.13 and B.14 run against it over raw sockets.
The upstream cases run against a misbehaving aiosmtpd with trustme certificates: the relay
must never send AUTH or mail unless the TLS it asked for is up with the certificate it
trusts.
"""

from __future__ import annotations

import asyncio
import base64
import datetime
import hashlib
import logging
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

CREDENTIALS = ("relay@example.org", "s3cret-app-password")
#: The listener's user (the upstream's CREDENTIALS are another account).
LISTENER_USER = ("trac", "listener-pass-7Q")
LISTENER_USERS = dict([LISTENER_USER])
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


def b64(data: bytes) -> bytes:
    return base64.b64encode(data)


def auth_plain(login: str, password: str) -> bytes:
    """The ``AUTH PLAIN`` command line with its initial response."""
    return b"AUTH PLAIN " + b64(f"\0{login}\0{password}".encode()) + b"\r\n"


async def tls_session(port: int, context: ssl.SSLContext) -> Wire:
    """Connect, EHLO, STARTTLS, and EHLO again inside TLS."""
    wire = await Wire.open(port)
    await wire.greet()
    assert code(await wire.command(b"STARTTLS\r\n")) == 220
    await wire.starttls(context)
    assert code(await wire.command(b"EHLO client.test\r\n")) == 250
    return wire


async def test_commands_pipelined_after_starttls_are_discarded(
    relay_for, upstream, listen_security, client_context
):
    # B.7: EHLO, a valid AUTH and MAIL ride in plaintext behind STARTTLS in one write
    relay = await relay_for(upstream, **listen_security(users=LISTENER_USERS))
    wire = await Wire.open(port_of(relay))
    await wire.greet()
    injected = b"EHLO injected\r\n" + auth_plain(*LISTENER_USER) + b"MAIL FROM:<injected@x>\r\n"
    await wire.send(b"STARTTLS\r\n" + injected)
    assert code(await wire.reply()) == 220
    await wire.starttls(client_context)
    # the first reply inside TLS answers this RCPT: nothing answered the injected lines,
    # and the session starts from scratch (no EHLO, no AUTH, no MAIL)
    assert (await wire.command(b"RCPT TO:<b@y>\r\n")).startswith(b"503 Error: send HELO first")
    assert code(await wire.command(b"EHLO client.test\r\n")) == 250
    assert (await wire.command(b"MAIL FROM:<a@x>\r\n")).startswith(b"530 5.7.0")
    assert code(await wire.command(auth_plain(*LISTENER_USER))) == 235
    assert (await wire.command(b"RCPT TO:<b@y>\r\n")).startswith(b"503 Error: need MAIL")
    await wire.close()


async def test_auth_is_offered_only_after_starttls(
    relay_for, upstream, listen_security, client_context
):
    # B.13: neither advertised nor accepted in plaintext, even with the right password
    relay = await relay_for(upstream, **listen_security(users=LISTENER_USERS))
    wire = await Wire.open(port_of(relay))
    assert code(await wire.reply()) == 220
    await wire.send(b"EHLO client.test\r\n")
    keywords = {line[4:].split()[0].upper() for line in await wire.lines()}
    assert b"STARTTLS" in keywords and b"AUTH" not in keywords
    assert (await wire.command(auth_plain(*LISTENER_USER))).startswith(b"538 5.7.11")
    assert (await wire.command(b"AUTH LOGIN\r\n")).startswith(b"538 5.7.11")
    assert (await wire.command(b"MAIL FROM:<a@x>\r\n")).startswith(b"530 5.7.0")
    assert code(await wire.command(b"STARTTLS\r\n")) == 220
    await wire.starttls(client_context)
    await wire.send(b"EHLO client.test\r\n")
    extensions = [line[4:].strip() for line in await wire.lines()]
    assert b"AUTH LOGIN PLAIN" in extensions and b"STARTTLS" not in extensions
    assert (await wire.command(b"MAIL FROM:<a@x>\r\n")).startswith(b"530 5.7.0")
    assert code(await wire.command(auth_plain(*LISTENER_USER))) == 235
    assert code(await wire.command(b"MAIL FROM:<trac@example.org>\r\n")) == 250
    await wire.close()


async def test_auth_brute_force_is_cut_off_and_never_logged(
    relay_for, upstream, listen_security, client_context, caplog
):
    # B.14: 535 after a delay, 421 and a hang-up at the budget, on every connection
    caplog.set_level(logging.DEBUG)  # aiosmtpd's and asyncio's debug lines too
    login, password = LISTENER_USER
    relay = await relay_for(
        upstream,
        **listen_security(users={login: password}, max_failures=3, failure_delay=0.3),
    )
    guesses = [f"guess-{n}-{password}" for n in range(50)]
    wire = await tls_session(port_of(relay), client_context)
    await wire.send(b"".join(auth_plain(login, guess) for guess in guesses))
    replies = await wire.replies_until_closed()
    await wire.close()
    assert [reply[:9] for reply in replies] == [b"535 5.7.8", b"535 5.7.8", b"421 4.7.0"]
    loop = asyncio.get_running_loop()
    for guess in guesses[:2]:  # a new connection gets a new budget, and it is the same
        wire = await tls_session(port_of(relay), client_context)
        started = loop.time()
        assert (await wire.command(auth_plain(login, guess))).startswith(b"535 5.7.8")
        assert (await wire.command(b"AUTH LOGIN " + b64(login.encode()) + b"\r\n"))[:3] == b"334"
        assert (await wire.command(b64(guess.encode()) + b"\r\n")).startswith(b"535 5.7.8")
        assert loop.time() - started >= 2 * 0.3
        assert (await wire.command(auth_plain(login, guess))).startswith(b"421 4.7.0")
        assert await wire.replies_until_closed() == []
        await wire.close()
    wire = await tls_session(port_of(relay), client_context)
    assert code(await wire.command(auth_plain(login, password))) == 235
    await wire.close()
    failures = [
        r
        for r in caplog.records
        if r.getMessage().startswith("auth: ") and "failed" in r.getMessage()
    ]
    assert len(failures) == 9 and all(f'as "{login}"' in r.getMessage() for r in failures)
    for secret in [password, *guesses]:
        blob = f"\0{login}\0{secret}".encode()
        for shown in (secret.encode(), b64(secret.encode()), b64(blob)):
            assert shown.decode() not in caplog.text


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
        # idle_time 0: each batch connects anew (a kept session is the pinned connection)
        relay = await tls_relay(server, fingerprint=fingerprint(pinned), idle_time=0)
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
