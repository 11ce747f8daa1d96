"""Webhooks against a local HTTP server: what is posted, signed, retried and logged, and
that SMTP never waits for them."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from aiohttp import web
from helpers import eventually, submit

from relay.config import load_config
from relay.credentials import read_credentials
from relay.errors import ConfigError

SECRET = "whsec-4f2c9a"


class Endpoint:
    """A local HTTP server recording each POST; ``answers`` are the statuses to give, in
    order (then 200); ``hang`` seconds before answering."""

    def __init__(self) -> None:
        self.posts: list[tuple[dict[str, str], bytes]] = []
        self.answers: list[int] = []
        self.hang = 0.0
        self.url = ""

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        status = self.answers.pop(0) if self.answers else 200  # decided before it is seen
        self.posts.append((dict(request.headers), body))
        await asyncio.sleep(self.hang)
        return web.Response(status=status)


@pytest.fixture
async def endpoint() -> AsyncIterator[Endpoint]:
    found = Endpoint()
    app = web.Application()
    app.router.add_post("/hook", found.handle)
    runner = web.AppRunner(app, shutdown_timeout=0.1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    found.url = f"http://127.0.0.1:{runner.addresses[0][1]}/hook"
    yield found
    await runner.cleanup()


@pytest.fixture
def secret_file(tmp_path: Path) -> Path:
    path = tmp_path / "webhook-secret"
    path.write_text(SECRET + "\n")
    path.chmod(0o600)
    return path


async def relay_with(make_config, start_relay, *hooks: dict[str, Any]):
    relay = await start_relay(make_config(capture={"webhooks": list(hooks)}))
    relay.webhooks.backoff = 0.05  # the schedule is tested by its arithmetic, not by waiting
    return relay


async def test_a_captured_message_is_posted_signed(
    make_config, start_relay, endpoint: Endpoint, secret_file: Path
) -> None:
    hook = {"url": endpoint.url, "secret_file": str(secret_file)}
    relay = await relay_with(make_config, start_relay, hook)
    await submit(relay, ["bob@example.org"])
    await eventually(lambda: endpoint.posts)
    headers, body = endpoint.posts[0]
    event = json.loads(body)
    assert event["event"] == "new" and headers["X-Notify-Relay-Event"] == "new"
    assert event["message"]["subject"] == "#1"
    assert event["message"]["recipients"] == ["bob@example.org"]
    assert event["message"] == relay.capture.item(event["message"]["id"])  # the API's list item
    expected = hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(headers["X-Notify-Relay-Signature"], f"sha256={expected}")


async def test_the_query_picks_the_messages_and_deleted_events_carry_ids(
    make_config, start_relay, endpoint: Endpoint
) -> None:
    hook = {"url": endpoint.url, "events": ["new", "deleted"], "query": "to:ann@example.org"}
    relay = await relay_with(make_config, start_relay, hook)
    await submit(relay, ["bob@example.org"])
    await submit(relay, ["ann@example.org"])
    await eventually(lambda: endpoint.posts)
    ids = relay.capture.matching("", timezone="UTC")
    await asyncio.to_thread(relay.capture.delete, ids)
    await eventually(lambda: len(endpoint.posts) == 3)
    events = [json.loads(body) for _, body in endpoint.posts]
    assert [e["event"] for e in events] == ["new", "deleted", "deleted"]
    assert events[0]["message"]["recipients"] == ["ann@example.org"]
    assert sorted(e["id"] for e in events[1:]) == sorted(ids)
    assert "X-Notify-Relay-Signature" not in endpoint.posts[0][0]


async def test_failed_posts_are_retried_then_given_up_and_logged_without_secrets(
    make_config, start_relay, endpoint: Endpoint, secret_file: Path, caplog
) -> None:
    url = endpoint.url + "?token=t0ps3cret"
    hook = {"url": url, "secret_file": str(secret_file), "attempts": 3}
    relay = await relay_with(make_config, start_relay, hook)
    endpoint.answers = [500, 503]
    await submit(relay, ["bob@example.org"])
    await eventually(lambda: len(endpoint.posts) == 3)
    assert endpoint.posts[0][1] == endpoint.posts[2][1]  # the same body each time
    endpoint.answers = [500, 500, 500]
    await submit(relay, ["bob@example.org"])
    await eventually(lambda: "given up" in caplog.text)
    assert len(endpoint.posts) == 6
    assert f"webhook {endpoint.url}: new post answered 500 (try 1 of 3)" in caplog.text
    assert "t0ps3cret" not in caplog.text and SECRET not in caplog.text


async def test_smtp_never_waits_for_a_slow_webhook(
    make_config, start_relay, endpoint: Endpoint
) -> None:
    endpoint.hang = 5.0
    relay = await relay_with(make_config, start_relay, {"url": endpoint.url, "timeout": 10})
    started = time.monotonic()
    for _ in range(3):
        await submit(relay, ["bob@example.org"])
    assert time.monotonic() - started < 2.0
    assert len(relay.capture.matching("", timezone="UTC")) == 3


def test_webhook_config_errors_name_the_key(tmp_path: Path, secret_file: Path) -> None:
    def load(hook: dict[str, Any]) -> None:
        path = tmp_path / "relay.yaml"
        path.write_text(yaml.safe_dump({"capture": {"webhooks": [hook]}}))
        read_credentials(load_config(path))  # the secret is read with the other credentials

    with pytest.raises(ConfigError, match=r"capture.webhooks: url: expected an http"):
        load({"url": "ftp://example.org/"})
    with pytest.raises(ConfigError, match=r"capture.webhooks: .*column"):
        load({"url": "http://127.0.0.1/", "query": "subject:(open"})
    with pytest.raises(ConfigError, match=r"capture.webhooks\[0\]: give only one of"):
        load({"url": "http://127.0.0.1/", "secret_file": str(secret_file), "secret_env": "X"})
    secret_file.chmod(0o644)
    with pytest.raises(ConfigError, match=r"capture.webhooks\[0\].secret_file: .*chmod 600"):
        load({"url": "http://127.0.0.1/", "secret_file": str(secret_file)})
