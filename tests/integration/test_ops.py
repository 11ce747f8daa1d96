"""Metrics, health endpoints, SIGHUP reload and JSON logs, on a real relay."""

from __future__ import annotations

import json
import os
import signal
import smtplib
import subprocess
import sys
import time
from pathlib import Path

import aiosmtplib
import pytest
import yaml
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from helpers import eventually, free_port, port_of, wait_for_port
from upstream import FakeUpstream

from relay.queue.spool import QueueState
from relay.web.ops import routes

MESSAGE = b"From: trac@example.org\r\nTo: bob@example.org\r\nSubject: #1\r\n\r\nHello\r\n"


async def ops_client(relay, **options) -> TestClient:
    app = web.Application()
    app.add_routes(routes(relay.web_deps(), **options))
    client = TestClient(TestServer(app))
    await client.start_server()
    return client


def sample(text: str, name: str) -> float:
    """The value of one sample (``name`` with its labels) in a Prometheus exposition."""
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[-1])
    return 0.0


def busy_mailbox(rcpt: str) -> str | None:
    return "451 4.2.1 mailbox busy" if rcpt.startswith("later") else None


async def test_metrics_move_when_mail_flows(make_config, start_relay):
    with FakeUpstream(tls="none", rcpt_reply=busy_mailbox) as upstream:
        relay = await start_relay(
            make_config(upstream={"host": "127.0.0.1", "port": upstream.port, "tls": "none"})
        )
        spool = relay.manager.spool
        client = await ops_client(relay)
        try:
            before = await (await client.get("/metrics")).text()
            assert sample(before, "notify_relay_messages_received_total") == 0
            async with aiosmtplib.SMTP(hostname="127.0.0.1", port=port_of(relay)) as smtp:
                await smtp.sendmail("trac@example.org", ["bob@example.org"], MESSAGE)
                await smtp.sendmail("trac@example.org", ["later@example.org"], MESSAGE)
                with pytest.raises(aiosmtplib.SMTPRecipientsRefused):
                    await smtp.sendmail("trac@example.org", ["bob"], MESSAGE)
            await eventually(lambda: upstream.messages and spool.ids(QueueState.DEFERRED))
            response = await client.get("/metrics")
            assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
            text = await response.text()
        finally:
            await client.close()
    assert sample(text, "notify_relay_messages_received_total") == 2
    assert sample(text, 'notify_relay_messages_rejected_total{reason="recipient"}') == 1
    assert sample(text, "notify_relay_messages_delivered_total") == 1
    assert sample(text, "notify_relay_messages_deferred_total") >= 1
    assert sample(text, "notify_relay_delivery_latency_seconds_count") == 1
    assert sample(text, 'notify_relay_upstream_replies_total{class="2xx"}') == 1
    assert sample(text, 'notify_relay_upstream_replies_total{class="4xx"}') >= 1
    assert sample(text, 'notify_relay_queue_messages{state="deferred"}') == 1
    assert sample(text, 'notify_relay_queue_messages{state="incoming"}') == 0
    assert sample(text, "notify_relay_queue_oldest_message_age_seconds") > 0


async def test_readyz_turns_unready_when_the_queue_cannot_be_written(make_config, start_relay):
    with FakeUpstream(tls="none") as upstream:
        relay = await start_relay(
            make_config(upstream={"host": "127.0.0.1", "port": upstream.port, "tls": "none"})
        )
        root = relay.manager.spool.root
        client = await ops_client(relay)
        try:
            assert (await client.get("/livez")).status == 200
            ready = await client.get("/readyz")
            assert ready.status == 200
            assert (await ready.json())["checks"]["storage"]["ok"] is True

            # tests run as root, so chmod would not stop writes: take the directory away
            root.rename(root.with_name("queue.moved"))
            root.write_text("not a directory")
            unready = await client.get("/readyz")
            body = await unready.json()
            assert unready.status == 503 and body["ready"] is False
            assert body["checks"]["storage"]["detail"].startswith(f"cannot write to {root}")
            assert body["checks"]["listeners"]["ok"] and body["checks"]["upstream"]["ok"]
            assert (await client.get("/livez")).status == 200

            root.unlink()
            root.with_name("queue.moved").rename(root)
            assert (await client.get("/readyz")).status == 200
        finally:
            await client.close()


async def test_readyz_turns_unready_when_the_upstream_keeps_failing(make_config, start_relay):
    relay = await start_relay(
        make_config(
            upstream={"host": "127.0.0.1", "port": free_port(), "tls": "none", "timeout": 2}
        )
    )
    patient, impatient = await ops_client(relay), await ops_client(relay, upstream_grace=0)
    try:
        async with aiosmtplib.SMTP(hostname="127.0.0.1", port=port_of(relay)) as smtp:
            await smtp.sendmail("trac@example.org", ["bob@example.org"], MESSAGE)
        await eventually(lambda: relay.manager.failing_since is not None)
        assert (await patient.get("/readyz")).status == 200  # a blip is not an outage
        unready = await impatient.get("/readyz")
        assert unready.status == 503
        assert "failing for" in (await unready.json())["checks"]["upstream"]["detail"]
    finally:
        await patient.close()
        await impatient.close()


class Served:
    """``notify-relay serve --log-format json`` in a child process."""

    def __init__(self, config: Path, port: int, log: Path) -> None:
        self.config, self.port, self.log = config, port, log
        with log.open("wb") as sink:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "relay", "serve", "-c", str(config), "--log-format", "json"],
                stderr=sink,
                stdout=sink,
            )
        if not wait_for_port(port):
            raise AssertionError(f"relay did not start: {log.read_text()[-2000:]}")

    def events(self) -> list[dict]:
        return [json.loads(line) for line in self.log.read_text().splitlines()]

    def hangup_and_wait(self, text: str) -> dict:
        """Send SIGHUP and wait for the log event whose message starts with ``text``."""
        seen = len(self.events())
        os.kill(self.process.pid, signal.SIGHUP)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            for event in self.events()[seen:]:
                if event["message"].startswith(text):
                    return event
            time.sleep(0.05)
        raise AssertionError(f"no {text!r} in the log: {self.log.read_text()[-2000:]}")


def test_sighup_applies_a_good_config_and_refuses_a_broken_one(tmp_path):
    port = free_port()
    config = tmp_path / "relay.yaml"

    def write(prefix: str) -> None:
        config.write_text(
            yaml.safe_dump(
                {
                    "listen": [f"127.0.0.1:{port}"],
                    "capture": {"path": str(tmp_path / "mail")},
                    "notification": {"smtp_subject_prefix": prefix},
                }
            )
        )

    def subjects() -> list[str]:
        paths = sorted((tmp_path / "mail" / "new").iterdir(), key=lambda p: p.stat().st_mtime_ns)
        return [
            line
            for path in paths
            for line in path.read_text().splitlines()
            if line.startswith("Subject:")
        ]

    write("[one]")
    served = Served(config, port, tmp_path / "relay.log")
    try:
        with smtplib.SMTP("127.0.0.1", port, timeout=10) as smtp:  # stays open across reloads
            smtp.sendmail("trac@example.org", ["bob@example.org"], MESSAGE)
            write("[two]")
            event = served.hangup_and_wait("reload: configuration from")
            assert event["level"] == "info"
            smtp.sendmail("trac@example.org", ["bob@example.org"], MESSAGE)

            config.write_text("listen: [127.0.0.1:2525\nnotification: {smtp_subject_prefix: x}\n")
            event = served.hangup_and_wait("reload: refused")
            assert event["level"] == "error" and "not valid YAML" in event["message"]
            smtp.sendmail("trac@example.org", ["bob@example.org"], MESSAGE)

            config.write_text(f"listen: ['127.0.0.1:{port}']\nupstream: {{host: x.example}}\n")
            event = served.hangup_and_wait("reload: refused")
            assert "switching between capture and relay mode needs a restart" in event["message"]
            smtp.sendmail("trac@example.org", ["bob@example.org"], MESSAGE)
        assert served.process.poll() is None
        assert subjects() == [
            "Subject: [one] #1",
            "Subject: [two] #1",
            "Subject: [two] #1",
            "Subject: [two] #1",
        ]
        received = [event for event in served.events() if event.get("nrcpt")]
        assert len(received) == 4 and all(len(event["queue_id"]) == 18 for event in received)
    finally:
        served.process.terminate()
        served.process.wait(10)


async def test_reload_points_queued_mail_at_the_new_upstream(make_config, start_relay):
    with FakeUpstream(tls="none") as upstream:
        wrong = free_port()  # nothing listens there
        retry = {"min_backoff": "1h", "max_backoff": "2h", "jitter": 0}
        relay = await start_relay(
            make_config(
                upstream={"host": "127.0.0.1", "port": wrong, "tls": "none"},
                queue={"path": "queue", "retry": retry},
            )
        )
        spool = relay.manager.spool
        async with aiosmtplib.SMTP(hostname="127.0.0.1", port=port_of(relay)) as smtp:
            await smtp.sendmail("trac@example.org", ["bob@example.org"], MESSAGE)
        await eventually(lambda: spool.ids(QueueState.DEFERRED))  # next try in an hour

        relay.reload(
            make_config(
                upstream={"host": "127.0.0.1", "port": upstream.port, "tls": "none"},
                queue={"path": "queue", "retry": retry},
            )
        )
        (received,) = await eventually(lambda: upstream.messages)
        assert received.recipients == ["bob@example.org"]
        await eventually(lambda: not spool.ids(QueueState.DEFERRED))
