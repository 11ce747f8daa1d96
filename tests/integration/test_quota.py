"""The sending-quota governor end to end: never past a limit, waiting mail, restarts, pauses."""

from __future__ import annotations

import asyncio
import time

import aiohttp
import pytest
from aiosmtpd.smtp import AuthResult
from helpers import eventually, submit
from upstream import FakeUpstream

from relay.cli.main import main
from relay.deliver.quota import read_usage
from relay.queue.actions import Action
from relay.queue.spool import QueueState
from relay.service import Relay


def section(upstream: FakeUpstream, **quota: object) -> dict[str, object]:
    return {"host": "127.0.0.1", "port": upstream.port, "tls": "none", "quota": quota}


def waiting(relay: Relay) -> list:
    spool = relay.manager.spool
    return [spool.read_state(queue_id) for queue_id in spool.ids(QueueState.DEFERRED)]


async def test_more_mail_than_the_limit_never_exceeds_it_and_the_rest_waits(
    make_config, start_relay, caplog
):
    with FakeUpstream() as upstream:
        config = make_config(upstream=section(upstream, messages=3))
        relay = await start_relay(config)
        for n in range(5):
            await submit(relay, [f"user{n}@example.org"])
        await eventually(lambda: len(waiting(relay)) == 2 and len(upstream.messages) == 3)
        await asyncio.sleep(1)  # retries every 0.2 s would show here
        assert len(upstream.messages) == 3
        for state in waiting(relay):
            assert state.reason == "quota" and state.attempts == 0
            assert state.next_attempt > time.time() + 23 * 3600  # when the first send ages out
        assert not relay.manager.spool.ids(QueueState.FAILED)
        assert "waiting for the sending quota: quota 127.0.0.1:" in caplog.text
        assert "80% of the limit used" not in caplog.text  # 3 of 3 jumps from 67% to 100%
        assert "100% of the limit used" in caplog.text
        (usage,) = read_usage(config.queue.path / "quota", time.time())
        assert (usage.messages, usage.message_limit) == (3, 3) and usage.next_slot is not None


async def test_queue_list_and_metrics_show_quota_and_the_next_slot(
    make_config, start_relay, tmp_path, capsys
):
    with FakeUpstream() as upstream:
        relay = await start_relay(make_config(upstream=section(upstream, messages=1)))
        await submit(relay, ["bob@example.org"])
        await submit(relay, ["carol@example.org"])
        await eventually(lambda: upstream.messages and waiting(relay))
        async with (  # the relay's own web listener
            aiohttp.ClientSession() as client,
            client.get(f"{relay.web.url}metrics") as response,
        ):
            metrics = await response.text()
        labels = f'account="127.0.0.1:{upstream.port}",kind="messages"'
        assert f"notify_relay_quota_used{{{labels}}} 1.0" in metrics
        assert f"notify_relay_quota_limit{{{labels}}} 1.0" in metrics
        assert "notify_relay_quota_next_slot_timestamp_seconds{" in metrics
        assert main(["queue", "list", "-c", str(tmp_path / "relay.yaml")]) == 0
        last = capsys.readouterr().out.splitlines()[-1]
        assert last.startswith(
            f"quota 127.0.0.1:{upstream.port}: 1/1 messages, 1/- recipients in 24 h; next slot 2"
        )


async def test_the_count_survives_a_restart(make_config, start_relay):
    with FakeUpstream() as upstream:
        config = make_config(upstream=section(upstream, messages=2))
        first = Relay(config)
        await first.start()
        try:
            for n in range(2):
                await submit(first, [f"user{n}@example.org"])
            await eventually(lambda: len(upstream.messages) == 2)
        finally:
            await first.stop()
        relay = await start_relay(config)
        await submit(relay, ["late@example.org"])
        await eventually(lambda: [state.reason for state in waiting(relay)] == ["quota"])
        await relay.manager.apply(Action.RETRY, relay.manager.spool.ids(QueueState.DEFERRED))
        await asyncio.sleep(0.5)
        assert len(upstream.messages) == 2


async def test_recipients_count_too_and_a_message_is_split_at_the_limit(make_config, start_relay):
    with FakeUpstream() as upstream:
        relay = await start_relay(make_config(upstream=section(upstream, recipients=3)))
        await submit(relay, [f"user{n}@example.org" for n in range(5)])
        await eventually(lambda: upstream.messages and waiting(relay))
        await asyncio.sleep(0.5)
        assert [message.recipients for message in upstream.messages] == [
            ["user0@example.org", "user1@example.org", "user2@example.org"]
        ]
        (state,) = waiting(relay)
        assert state.reason == "quota" and state.done == (
            "user0@example.org",
            "user1@example.org",
            "user2@example.org",
        )


async def test_the_pace_spreads_messages_over_minutes(make_config, start_relay):
    with FakeUpstream() as upstream:
        relay = await start_relay(make_config(upstream=section(upstream, per_minute=2)))
        for n in range(3):
            await submit(relay, [f"user{n}@example.org"])
        await eventually(lambda: len(upstream.messages) == 2 and waiting(relay))
        (state,) = waiting(relay)
        assert 40 < state.next_attempt - time.time() <= 60


async def test_warning_at_80_percent(make_config, start_relay, caplog):
    with FakeUpstream() as upstream:
        relay = await start_relay(make_config(upstream=section(upstream, messages=5)))
        for n in range(4):
            await submit(relay, [f"user{n}@example.org"])
        await eventually(lambda: len(upstream.messages) == 4)
        await eventually(lambda: "4/5 messages" in caplog.text)
        assert caplog.text.count("80% of the limit used") == 1


async def test_a_quota_reply_pauses_the_upstream(make_config, start_relay, caplog):
    answers = ["550 5.4.5 Daily user sending limit exceeded"]
    tries = []

    def data_reply(envelope):
        tries.append(envelope.rcpt_tos)
        return answers.pop(0) if answers else None

    with FakeUpstream(data_reply=data_reply) as upstream:
        config = make_config(upstream=section(upstream, preset="gmail", pause="1h"))
        relay = await start_relay(config)
        await submit(relay, ["bob@example.org"])
        await eventually(lambda: waiting(relay))
        await submit(relay, ["carol@example.org"])
        await eventually(lambda: len(waiting(relay)) == 2)
        await asyncio.sleep(0.5)
        assert len(tries) == 1 and upstream.messages == []  # nothing more went out
        assert {state.reason for state in waiting(relay)} == {"quota"}  # the retry waits too
        assert not relay.manager.spool.ids(QueueState.FAILED)
        (usage,) = read_usage(config.queue.path / "quota", time.time())
        assert usage.paused_until > time.time() + 3500 and usage.messages == 0
        assert "pausing until" in caplog.text


class TooManyLogins(FakeUpstream):
    """Gmail's answer to AUTH when an account logs in too often: ``454 4.7.0``."""

    def _authenticate(self, server, session, envelope, mechanism, auth_data) -> AuthResult:
        self.auth_attempts.append((auth_data.login.decode(), True))
        message = "454 4.7.0 Too many login attempts, please try again later."
        return AuthResult(success=False, handled=False, message=message)


@pytest.mark.parametrize("answer", ["421 at RCPT", "454 at AUTH"])
async def test_a_rate_reply_pauses_the_upstream_without_holding_or_failing(
    make_config, start_relay, password_file, server_context, ca_file, caplog, answer
):
    asked: list[object] = []

    def slow_down(address: str) -> str:
        asked.append(address)
        return "421 4.7.0 Try again later, closing connection."

    if answer == "421 at RCPT":
        upstream = FakeUpstream(rcpt_reply=slow_down)
        login: dict[str, object] = {}
    else:
        upstream = TooManyLogins(
            tls="starttls", context=server_context, credentials=("trac", "s3cret-app-password")
        )
        asked = upstream.auth_attempts
        login = {"tls": "starttls", "ca_file": ca_file, "username": "trac"}
        login["password_file"] = password_file
    with upstream:
        config = make_config(upstream={**section(upstream, messages=100, pause="1h"), **login})
        relay = await start_relay(config)
        await submit(relay, ["bob@example.org"])
        await eventually(lambda: waiting(relay))
        await submit(relay, ["carol@example.org"])
        await eventually(lambda: len(waiting(relay)) == 2)
        await asyncio.sleep(1)  # retries every 0.2 s (or new logins) would show here
        assert len(asked) == 1 and upstream.messages == []
        assert {state.reason for state in waiting(relay)} == {"quota"}  # the retry waits too
        assert not relay.manager.spool.ids(QueueState.FAILED)
        assert "HOLDING" not in caplog.text and "pausing until" in caplog.text
        (usage,) = read_usage(config.queue.path / "quota", time.time())
        assert usage.paused_until > time.time() + 3500 and usage.messages == 0


async def test_metrics_and_queue_list_report_the_configured_limits_after_a_change(
    make_config, start_relay, tmp_path, capsys
):
    with FakeUpstream() as upstream:
        first = Relay(make_config(upstream=section(upstream, messages=5, window="2h")))
        await first.start()
        for name in ("bob", "carol"):
            await submit(first, [f"{name}@example.org"])
        await eventually(lambda: len(upstream.messages) == 2)
        await first.stop()
        lowered = make_config(upstream=section(upstream, messages=1, recipients=10))
        relay = await start_relay(lowered)  # nothing sent since: the file still says 5 in 2 h
        metrics = relay.metrics.exposition().decode()
        labels = f'account="127.0.0.1:{upstream.port}",kind="%s"'
        assert f"notify_relay_quota_used{{{labels % 'messages'}}} 2.0" in metrics
        assert f"notify_relay_quota_limit{{{labels % 'messages'}}} 1.0" in metrics
        assert f"notify_relay_quota_limit{{{labels % 'recipients'}}} 10.0" in metrics
        assert main(["queue", "list", "-c", str(tmp_path / "relay.yaml")]) == 0
        last = capsys.readouterr().out.splitlines()[-1]
        assert f"quota 127.0.0.1:{upstream.port}: 2/1 messages, 2/10 recipients in 24 h" in last
