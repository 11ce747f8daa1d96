"""Several upstreams: fail-over in order on refused connections and 4xx, routes by pattern."""

from __future__ import annotations

import asyncio

from helpers import eventually, free_port, submit
from upstream import FakeUpstream

from relay.queue.spool import QueueState


def plain(port: int, **extra: object) -> dict[str, object]:
    return {"host": "127.0.0.1", "port": port, "tls": "none", "timeout": 2, **extra}


def busy(address: str) -> str:
    return "451 4.3.2 try later"


def unknown(address: str) -> str:
    return "550 5.1.1 no such user"


async def test_a_refused_connection_moves_on_to_the_next_upstream(make_config, start_relay, caplog):
    with FakeUpstream() as second:
        down = free_port()
        config = make_config(
            upstreams=[plain(down, name="first"), plain(second.port, name="second")]
        )
        relay = await start_relay(config)
        await submit(relay, ["bob@example.org"])
        (received,) = await eventually(lambda: second.messages)
        assert received.recipients == ["bob@example.org"]
        assert "connect to first" in caplog.text
        assert f"relay=127.0.0.1[127.0.0.1]:{second.port}, delay=" in caplog.text
        assert "status=sent" in caplog.text


def busy_first(address: str) -> str | None:
    return busy(address) if address.startswith("busy") else None


async def test_a_4xx_moves_on_to_the_next_upstream(make_config, start_relay):
    with FakeUpstream(rcpt_reply=busy_first) as first, FakeUpstream() as second:
        relay = await start_relay(make_config(upstreams=[plain(first.port), plain(second.port)]))
        await submit(relay, ["busy@example.org", "bob@example.org"])
        await eventually(lambda: first.messages and second.messages)
        assert first.messages[0].recipients == ["bob@example.org"]
        assert second.messages[0].recipients == ["busy@example.org"]


async def test_a_5xx_is_final_and_does_not_move_on(make_config, start_relay):
    with FakeUpstream(rcpt_reply=unknown) as first, FakeUpstream() as second:
        relay = await start_relay(make_config(upstreams=[plain(first.port), plain(second.port)]))
        await submit(relay, ["gone@example.org"])
        await eventually(lambda: relay.manager.spool.ids(QueueState.FAILED))
        assert second.messages == []


async def test_every_upstream_failing_defers_with_the_last_reply(make_config, start_relay):
    with FakeUpstream(rcpt_reply=busy) as first, FakeUpstream(rcpt_reply=busy) as second:
        relay = await start_relay(make_config(upstreams=[plain(first.port), plain(second.port)]))
        await submit(relay, ["bob@example.org"])
        spool = relay.manager.spool
        await eventually(lambda: spool.ids(QueueState.DEFERRED))
        (queue_id,) = spool.ids(QueueState.DEFERRED)
        state = spool.read_state(queue_id)
        assert state.last_reply == "451 4.3.2 try later"
        assert state.log[-1].relay.endswith(f":{second.port}")


async def test_routes_by_recipient_and_sender_pattern(make_config, start_relay):
    with FakeUpstream() as internal, FakeUpstream() as alerts, FakeUpstream() as default:
        upstreams = [
            plain(internal.port, name="internal", recipients=["*@internal.example"]),
            plain(alerts.port, name="alerts", senders=["alerts@*"]),
            plain(default.port, name="gmail"),
        ]
        relay = await start_relay(make_config(upstreams=upstreams))
        await submit(relay, ["a@Internal.Example", "b@example.com"])
        await submit(relay, ["c@example.com"], sender="alerts@example.org")
        await eventually(
            lambda: internal.messages and alerts.messages and len(default.messages) == 1
        )
        assert internal.messages[0].recipients == ["a@Internal.Example"]
        assert default.messages[0].recipients == ["b@example.com"]
        assert alerts.messages[0].recipients == ["c@example.com"]


async def test_a_routed_recipient_never_falls_over_to_the_default_chain(make_config, start_relay):
    with FakeUpstream() as default:
        upstreams = [
            plain(free_port(), name="internal", recipients=["*@internal.example"]),
            plain(default.port, name="gmail"),
        ]
        relay = await start_relay(make_config(upstreams=upstreams))
        await submit(relay, ["a@internal.example"])
        await eventually(lambda: relay.manager.spool.ids(QueueState.DEFERRED))
        await asyncio.sleep(0.5)
        assert default.messages == []


async def test_bad_credentials_hold_only_that_upstream_and_mail_moves_on(
    make_config, start_relay, server_context, ca_file, password_file, caplog
):
    with (
        FakeUpstream(tls="starttls", context=server_context, credentials=("trac", "other")) as bad,
        FakeUpstream() as second,
    ):
        login = {"username": "trac", "password_file": password_file}
        first = {"host": "127.0.0.1", "port": bad.port, "ca_file": ca_file, **login}
        config = make_config(
            upstreams=[{**first, "name": "first"}, plain(second.port)],
            queue={"path": "queue", "retry": {"min_backoff": 60}},  # how long the hold lasts
        )
        relay = await start_relay(config)
        await submit(relay, ["bob@example.org"])
        await eventually(lambda: second.messages)
        assert "HOLDING ALL DELIVERY through first" in caplog.text
        await submit(relay, ["carol@example.org"])
        await eventually(lambda: len(second.messages) == 2)
        assert len(bad.auth_attempts) == 1  # held: the second message did not log in again


async def test_an_upstream_out_of_quota_passes_mail_to_the_next(make_config, start_relay):
    with FakeUpstream() as first, FakeUpstream() as second:
        upstreams = [plain(first.port, quota={"messages": 1}), plain(second.port)]
        relay = await start_relay(make_config(upstreams=upstreams))
        await submit(relay, ["bob@example.org"])
        await eventually(lambda: first.messages)
        await submit(relay, ["carol@example.org"])
        (received,) = await eventually(lambda: second.messages)
        assert received.recipients == ["carol@example.org"] and len(first.messages) == 1
        assert not relay.manager.spool.ids(QueueState.DEFERRED)
