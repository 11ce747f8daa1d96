"""Per-recipient Gmail filter simulation in the relay, and ``enforce: [delete]``."""

from __future__ import annotations

import json
from pathlib import Path

import aiosmtplib
from helpers import FIXTURES, eventually, port_of
from upstream import FakeUpstream

RULES = Path(__file__).resolve().parents[2] / "rules" / "trac-own-changes.yaml"
CHANGE_BY_DAVE = FIXTURES / "trac" / "new-and-change" / "0002.eml"
RECIPIENTS = ["dave@example.com", "alice@example.com"]


def filter_sets(**extra):
    return {
        "sets": [
            {"recipients": ["dave@*"], "rules": str(RULES), "params": {"username": "dave"}},
            {"recipients": ["alice@*"], "rules": str(RULES), "params": {"username": "alice"}},
        ],
        **extra,
    }


async def send(relay):
    async with aiosmtplib.SMTP(hostname="127.0.0.1", port=port_of(relay)) as client:
        await client.sendmail("trac@trac.example.org", RECIPIENTS, CHANGE_BY_DAVE.read_bytes())


async def test_capture_keeps_what_each_recipients_filters_would_do(
    make_config, start_relay, tmp_path
):
    relay = await start_relay(make_config(filters=filter_sets(enforce=["delete"])))
    await send(relay)
    (meta_file,) = (tmp_path / "mail" / "meta").glob("*.json")
    meta = json.loads(meta_file.read_text())
    assert meta["recipients"] == RECIPIENTS  # capture mode never enforces
    dave, alice = meta["filters"]["dave@example.com"], meta["filters"]["alice@example.com"]
    assert dave["trashed"] and dave["matched"] == [{"index": 1, "name": "trac-own-changes"}]
    assert not alice["trashed"] and alice["in_inbox"] and alice["matched"] == []


async def test_enforce_delete_drops_only_that_recipients_copy(make_config, start_relay, caplog):
    with FakeUpstream() as upstream:
        config = make_config(
            upstream={"host": "127.0.0.1", "port": upstream.port, "tls": "none"},
            filters=filter_sets(enforce=["delete"]),
        )
        relay = await start_relay(config)
        await send(relay)
        (received,) = await eventually(lambda: upstream.messages)
        assert received.recipients == ["alice@example.com"]
        assert "dave@example.com dropped: deleted by trac-own-changes.yaml" in caplog.text


async def test_without_enforce_everybody_still_gets_it(make_config, start_relay):
    with FakeUpstream() as upstream:
        config = make_config(
            upstream={"host": "127.0.0.1", "port": upstream.port, "tls": "none"},
            filters=filter_sets(),
        )
        relay = await start_relay(config)
        await send(relay)
        (received,) = await eventually(lambda: upstream.messages)
        assert received.recipients == RECIPIENTS
