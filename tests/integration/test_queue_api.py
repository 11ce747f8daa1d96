"""Queue actions over the API (retry now, hold, release, delete), as the CLI has them, behind
the same Origin and Host checks as every other change; against a real ``serve``."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator

import aiohttp
import pytest
from helpers import free_port
from served import Served, mail


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """Relay mode towards a port nobody listens on: every message stays deferred."""
    directory = tmp_path_factory.mktemp("queued")
    upstream = {"host": "127.0.0.1", "port": free_port(), "tls": "none", "timeout": 2}
    retry = {"min_backoff": "1h", "max_backoff": "2h"}
    with Served(directory, upstream=upstream, queue={"path": "queue", "retry": retry}) as server:
        yield server


@pytest.fixture
async def http(served: Served) -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(served.url) as session:
        yield session


async def state_of(http: aiohttp.ClientSession, queue_id: str) -> str | None:
    async with http.get("/api/v1/queue") as response:
        entries = (await response.json())["messages"]
    return next((entry["state"] for entry in entries if entry["id"] == queue_id), None)


async def deferred(http: aiohttp.ClientSession, served: Served, subject: str) -> str:
    queue_id = await served.send(mail(subject))
    for _ in range(200):
        if await state_of(http, queue_id) == "deferred":
            return queue_id
        await asyncio.sleep(0.05)
    raise AssertionError(f"{queue_id} never deferred")


async def act(http: aiohttp.ClientSession, queue_id: str, action: str, **headers: str):
    async with http.post(f"/api/v1/queue/{queue_id}/{action}", headers=headers) as response:
        return response.status, await response.json()


async def settled(http: aiohttp.ClientSession, queue_id: str, action: str):
    """``act``, again while the message is being delivered (a retry or release starts an
    attempt at once; the dead upstream defers it within moments)."""
    for _ in range(100):
        status, body = await act(http, queue_id, action)
        if "being delivered right now" not in body.get("reason", ""):
            return status, body
        await asyncio.sleep(0.05)
    raise AssertionError(f"{queue_id} stayed busy")


async def test_retry_hold_release_and_delete(http, served) -> None:
    queue_id = await deferred(http, served, "queued for actions")
    status, body = await act(http, queue_id, "retry")
    assert status == 200 and body == {"done": [f"{queue_id}: due now"], "refused": []}
    status, body = await settled(http, queue_id, "hold")
    assert status == 200 and body["done"] == [f"{queue_id}: held"]
    assert await state_of(http, queue_id) == "hold"
    status, body = await act(http, queue_id, "retry")
    assert status == 409 and "it is hold; retry takes incoming or deferred mail" in body["reason"]
    status, body = await act(http, queue_id, "release")
    assert status == 200 and body["done"] == [f"{queue_id}: released"]
    status, body = await settled(http, queue_id, "delete")
    assert status == 200 and body["done"][0].startswith(f"{queue_id}: deleted")
    assert await state_of(http, queue_id) is None


async def test_unknown_action_and_unknown_message(http) -> None:
    status, body = await act(http, "NOSUCHID", "hold")
    assert status == 409 and body["reason"] == "NOSUCHID: no such message in the queue"
    async with http.post("/api/v1/queue/NOSUCHID/explode") as response:
        assert response.status == 404


async def test_queue_actions_pass_the_origin_and_host_checks(http, served) -> None:
    queue_id = await deferred(http, served, "guarded")
    status, _ = await act(http, queue_id, "delete", Origin="http://evil.example")
    assert status == 403
    status, _ = await act(http, queue_id, "delete", **{"Sec-Fetch-Site": "cross-site"})
    assert status == 403
    status, _ = await act(http, queue_id, "delete", Host="rebound.example")
    assert status == 403
    assert await state_of(http, queue_id) == "deferred"


async def test_capture_mode_has_no_queue_to_act_on(tmp_path) -> None:
    with Served(tmp_path) as server:
        async with aiohttp.ClientSession(server.url) as http:
            status, body = await act(http, "X", "hold")
    assert status == 404 and "capture mode" in body["reason"]
