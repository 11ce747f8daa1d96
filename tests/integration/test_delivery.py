"""Relay mode end to end: the relay's listener in, a real upstream (TLS, AUTH) out."""

from __future__ import annotations

import re

import aiosmtplib
import pytest
from helpers import eventually, port_of
from upstream import DROP, FakeUpstream

from relay.queue.spool import QueueState

MESSAGE = b"From: trac@example.org\r\nTo: bob@example.org\r\nSubject: #1\r\n\r\nHello\r\n"
CREDENTIALS = ("relay@example.org", "s3cret-app-password")


async def submit(
    relay, sender="trac@example.org", recipients=("bob@example.org",), message=MESSAGE
):
    async with aiosmtplib.SMTP(hostname="127.0.0.1", port=port_of(relay)) as client:
        errors, reply = await client.sendmail(sender, list(recipients), message)
    return errors, reply


def upstream_section(upstream, **extra):
    return {"host": "127.0.0.1", "port": upstream.port, **extra}


async def test_starttls_and_auth_delivery(
    make_config, start_relay, server_context, ca_file, password_file, caplog
):
    with FakeUpstream(tls="starttls", context=server_context, credentials=CREDENTIALS) as upstream:
        relay = await start_relay(
            make_config(
                upstream=upstream_section(
                    upstream,
                    tls="starttls",
                    username=CREDENTIALS[0],
                    password_file=password_file,
                    ca_file=ca_file,
                )
            )
        )
        errors, reply = await submit(relay)
        assert errors == {} and reply.startswith("2.0.0 Ok: queued as ")
        (received,) = await eventually(lambda: upstream.messages)
        assert received.tls and received.auth == CREDENTIALS[0]
        assert received.recipients == ["bob@example.org"]
        assert received.content == MESSAGE
        spool = relay.manager.spool
        await eventually(
            lambda: not spool.ids(QueueState.INCOMING) and not spool.ids(QueueState.DEFERRED)
        )
        queue_id = reply.rsplit(" ", 1)[1]
        line = (
            rf"{queue_id}: to=<bob@example.org>, relay=127.0.0.1\[127.0.0.1\]:{upstream.port}, "
            r"delay=\d+\.\d\d, attempts=1, dsn=2.0.0, status=sent \(250 2.0.0 OK queued as up1\)"
        )
        assert re.search(line, caplog.text), caplog.text
        assert "s3cret" not in caplog.text


async def test_implicit_tls_delivery(
    make_config, start_relay, server_context, ca_file, password_file
):
    with FakeUpstream(tls="implicit", context=server_context, credentials=CREDENTIALS) as upstream:
        config = make_config(
            upstream=upstream_section(
                upstream,
                tls="implicit",
                username=CREDENTIALS[0],
                password_file=password_file,
                ca_file=ca_file,
            )
        )
        relay = await start_relay(config)
        await submit(relay)
        (received,) = await eventually(lambda: upstream.messages)
        assert received.tls and received.auth == CREDENTIALS[0]


async def test_untrusted_certificate_is_refused(
    make_config, start_relay, server_context, password_file, caplog
):
    with FakeUpstream(tls="starttls", context=server_context, credentials=CREDENTIALS) as upstream:
        # no ca_file: the system CAs do not know the trustme CA
        config = make_config(
            upstream=upstream_section(
                upstream, username=CREDENTIALS[0], password_file=password_file
            )
        )
        relay = await start_relay(config)
        await submit(relay)
        spool = relay.manager.spool
        await eventually(lambda: spool.ids(QueueState.DEFERRED))
        assert upstream.messages == [] and upstream.auth_attempts == []
        assert "certificate verify failed" in caplog.text.lower()


async def test_no_starttls_offered_means_no_auth_in_clear(
    make_config, start_relay, ca_file, password_file, caplog
):
    with FakeUpstream(tls="none", credentials=CREDENTIALS) as upstream:
        config = make_config(
            upstream=upstream_section(
                upstream, username=CREDENTIALS[0], password_file=password_file, ca_file=ca_file
            )
        )
        relay = await start_relay(config)
        await submit(relay)
        await eventually(lambda: relay.manager.spool.ids(QueueState.DEFERRED))
        assert upstream.auth_attempts == [] and upstream.messages == []
        assert "does not offer STARTTLS" in caplog.text


async def test_4xx_is_deferred_then_retried(make_config, start_relay):
    answers = ["451 4.3.0 try later", None]
    with FakeUpstream(data_reply=lambda envelope: answers.pop(0)) as upstream:
        relay = await start_relay(make_config(upstream=upstream_section(upstream, tls="none")))
        await submit(relay)
        await eventually(lambda: upstream.messages)
        assert answers == []  # the first attempt got 451, the retry went through
        spool = relay.manager.spool
        await eventually(lambda: not spool.ids(QueueState.DEFERRED))
        assert not spool.ids(QueueState.FAILED)


async def test_5xx_fails_only_that_recipient(make_config, start_relay, caplog):
    def refuse_carol(address):
        return "550 5.1.1 no such user" if address.startswith("carol") else None

    with FakeUpstream(rcpt_reply=refuse_carol) as upstream:
        relay = await start_relay(make_config(upstream=upstream_section(upstream, tls="none")))
        await submit(
            relay, recipients=("alice@example.org", "carol@example.org", "bob@example.org")
        )
        (received,) = await eventually(lambda: upstream.messages)
        assert received.recipients == ["alice@example.org", "bob@example.org"]
        spool = relay.manager.spool
        (failed,) = await eventually(lambda: spool.ids(QueueState.FAILED))
        state = spool.read_state(failed)
        assert state.failed == ("carol@example.org",)
        assert set(state.done) == {"alice@example.org", "bob@example.org"}
        assert (
            "to=<carol@example.org>" in caplog.text and "dsn=5.1.1, status=bounced" in caplog.text
        )


async def test_disconnect_after_data_is_deferred_and_retried(make_config, start_relay):
    answers = [DROP, None]
    with FakeUpstream(data_reply=lambda envelope: answers.pop(0)) as upstream:
        relay = await start_relay(make_config(upstream=upstream_section(upstream, tls="none")))
        await submit(relay)
        await eventually(lambda: upstream.messages)
        assert answers == []


async def test_recipients_split_into_upstream_transactions(make_config, start_relay):
    with FakeUpstream() as upstream:
        config = make_config(
            upstream=upstream_section(upstream, tls="none", max_recipients_per_message=100)
        )
        relay = await start_relay(config)
        recipients = [f"user{i}@example.org" for i in range(250)]
        await submit(relay, recipients=recipients)
        received = await eventually(lambda: len(upstream.messages) == 3 and upstream.messages)
        assert [len(message.recipients) for message in received] == [100, 100, 50]
        assert [rcpt for message in received for rcpt in message.recipients] == recipients


async def test_bad_credentials_hold_the_queue_instead_of_failing(
    make_config, start_relay, server_context, ca_file, password_file, caplog
):
    with FakeUpstream(
        tls="starttls", context=server_context, credentials=("relay@example.org", "other")
    ) as upstream:
        config = make_config(
            upstream=upstream_section(
                upstream, username=CREDENTIALS[0], password_file=password_file, ca_file=ca_file
            )
        )
        relay = await start_relay(config)
        await submit(relay)
        spool = relay.manager.spool
        await eventually(lambda: spool.ids(QueueState.DEFERRED))
        assert "HOLDING ALL DELIVERY" in caplog.text
        assert not spool.ids(QueueState.FAILED)
        assert s3cret_not_in(caplog.text)


def s3cret_not_in(text: str) -> bool:
    return "s3cret" not in text


async def test_null_sender_is_relayed(make_config, start_relay):
    with FakeUpstream() as upstream:
        relay = await start_relay(make_config(upstream=upstream_section(upstream, tls="none")))
        await submit(relay, sender="")
        (received,) = await eventually(lambda: upstream.messages)
        assert received.sender in ("", "<>")


async def test_gmail_quota_reply_is_deferred_not_bounced(make_config, start_relay):
    answers = ["550 5.4.5 Daily user sending limit exceeded", None]
    with FakeUpstream(data_reply=lambda envelope: answers.pop(0)) as upstream:
        relay = await start_relay(make_config(upstream=upstream_section(upstream, tls="none")))
        await submit(relay)
        await eventually(lambda: upstream.messages)
        assert not relay.manager.spool.ids(QueueState.FAILED)


@pytest.mark.parametrize("tls", ["starttls", "implicit"])
async def test_wrong_tls_mode_for_the_port_defers(
    make_config, start_relay, server_context, ca_file, tls
):
    other = "implicit" if tls == "starttls" else "starttls"
    with FakeUpstream(tls=other, context=server_context) as upstream:
        relay = await start_relay(
            make_config(upstream=upstream_section(upstream, tls=tls, ca_file=ca_file, timeout=2))
        )
        await submit(relay)
        await eventually(lambda: relay.manager.spool.ids(QueueState.DEFERRED))
        assert upstream.messages == []
