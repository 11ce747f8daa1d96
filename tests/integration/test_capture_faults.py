"""Fault injection on the capture listener, over real SMTP: refusals at each stage, for
chosen recipients, delays, a drop during DATA; and the API that changes the rules."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import aiohttp
import aiosmtplib
import pytest
from helpers import MESSAGE, port_of, submit


def faults(*rules: dict[str, Any], seed: int | None = None) -> dict[str, Any]:
    return {"faults": {"rules": list(rules), "seed": seed}}


async def test_a_refusal_for_chosen_recipients_leaves_the_others_alone(
    make_config, start_relay
) -> None:
    rule = {"stage": "rcpt", "reply": "450 4.2.1 Mailbox busy", "recipients": ["flaky@*"]}
    relay = await start_relay(make_config(capture=faults(rule)))
    refused, reply = await submit(relay, ["flaky@example.org", "bob@example.org"])
    assert refused["flaky@example.org"].code == 450
    assert "4.2.1 Mailbox busy" in refused["flaky@example.org"].message
    assert "queued as" in reply
    [stored] = relay.capture.matching("", timezone="UTC")
    assert relay.capture.read(stored)[1].recipients == ("bob@example.org",)


@pytest.mark.parametrize(
    ("stage", "error"),
    [
        ("connect", aiosmtplib.SMTPConnectError),
        ("mail", aiosmtplib.SMTPSenderRefused),
        ("data", aiosmtplib.SMTPDataError),
    ],
)
async def test_each_stage_can_refuse(make_config, start_relay, stage: str, error: type) -> None:
    rule = {"stage": stage, "reply": "421 4.3.2 Service not available, try later"}
    relay = await start_relay(make_config(capture=faults(rule)))
    with pytest.raises(error) as raised:
        await submit(relay, ["bob@example.org"])
    assert "4.3.2 Service not available" in str(raised.value)
    assert relay.capture.matching("", timezone="UTC") == []


async def test_a_drop_during_data_closes_without_a_reply_and_keeps_nothing(
    make_config, start_relay
) -> None:
    relay = await start_relay(make_config(capture=faults({"stage": "data", "drop": True})))
    with pytest.raises(aiosmtplib.SMTPServerDisconnected):
        await submit(relay, ["bob@example.org"])
    assert relay.capture.matching("", timezone="UTC") == []


async def test_a_drop_hangs_up_halfway_through_the_message(make_config, start_relay) -> None:
    relay = await start_relay(make_config(capture=faults({"stage": "data", "drop": True})))
    reader, writer = await asyncio.open_connection("127.0.0.1", port_of(relay))
    replies = [await reader.readline()]
    for command in (b"EHLO client.test", b"MAIL FROM:<a@example.org>", b"RCPT TO:<b@example.org>"):
        writer.write(command + b"\r\n")
        while (line := await reader.readline())[3:4] == b"-":
            pass
        replies.append(line)
    writer.write(b"DATA\r\n")
    replies.append(await reader.readline())
    assert [reply[:3] for reply in replies] == [b"220", b"250", b"250", b"250", b"354"]
    writer.write(b"Subject: cut short\r\n\r\nThe first lines, and no end yet.\r\n")
    await writer.drain()
    assert await asyncio.wait_for(reader.read(), 5) == b""  # hung up before the final dot
    writer.close()
    assert relay.capture.matching("", timezone="UTC") == []


async def test_a_delay_holds_the_reply_then_goes_on(make_config, start_relay) -> None:
    relay = await start_relay(make_config(capture=faults({"stage": "mail", "delay": 0.4})))
    started = time.monotonic()
    _, reply = await submit(relay, ["bob@example.org"])
    assert "queued as" in reply
    assert time.monotonic() - started >= 0.4


async def test_a_seeded_rate_refuses_the_same_messages_each_run(make_config, start_relay) -> None:
    rule = {"stage": "data", "reply": "451 4.3.0 Chaos", "rate": 0.5}
    outcomes = []
    for _ in range(2):
        relay = await start_relay(make_config(capture=faults(rule, seed=3)))
        run = []
        for _ in range(8):
            try:
                await submit(relay, ["bob@example.org"])
                run.append(True)
            except aiosmtplib.SMTPDataError:
                run.append(False)
        outcomes.append(run)
        await relay.stop()
    assert outcomes[0] == outcomes[1]
    assert True in outcomes[0] and False in outcomes[0]


async def test_the_api_sets_shows_and_clears_the_rules(make_config, start_relay) -> None:
    relay = await start_relay(make_config())
    async with aiohttp.ClientSession(relay.web.url) as http:
        async with http.get("/api/v1/faults") as response:
            assert await response.json() == {"active": False, "seed": None, "rules": []}
        rule = {"stage": "rcpt", "reply": "452 4.2.2 Over quota", "times": 1}
        async with http.put("/api/v1/faults", json={"rules": [rule]}) as response:
            assert response.status == 200
        refused, _ = await submit(relay, ["bob@example.org", "ann@example.org"])
        assert list(refused) == ["bob@example.org"]
        async with http.get("/api/v1/faults") as response:
            shown = await response.json()
        assert shown["active"] and shown["rules"][0]["fired"] == 1
        assert shown["rules"][0]["reply"] == "452 4.2.2 Over quota"
        bad = {"rules": [{"stage": "helo", "reply": "421 x"}]}
        async with http.put("/api/v1/faults", json=bad) as response:
            assert response.status == 400
            reason = (await response.json())["reason"]
        assert (
            reason
            == 'request body: rules[0].stage: expected one of connect, mail, rcpt, data; got "helo"'
        )
        async with http.delete("/api/v1/faults") as response:
            assert (await response.json())["active"] is False
    async with aiosmtplib.SMTP(hostname="127.0.0.1", port=port_of(relay)) as client:
        refused, _ = await client.sendmail("a@example.org", ["bob@example.org"], MESSAGE)
    assert refused == {}


async def test_the_api_has_no_faults_in_relay_mode(make_config, start_relay) -> None:
    config = make_config(upstream={"host": "127.0.0.1", "port": 9, "tls": "none"})
    relay = await start_relay(config)
    async with (
        aiohttp.ClientSession(relay.web.url) as http,
        http.put("/api/v1/faults", json={"rules": []}) as response,
    ):
        assert response.status == 404
        assert "capture mode" in (await response.json())["reason"]
