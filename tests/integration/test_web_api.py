"""The JSON API over real HTTP against a real ``notify-relay serve``: SMTP in, JSON out."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aiohttp
import pytest
import yaml
from helpers import FIXTURES
from served import Served, mail
from upstream import FakeUpstream

RULES = Path(__file__).resolve().parents[2] / "rules" / "trac-own-changes.yaml"
CHANGE_BY_DAVE = FIXTURES / "trac" / "new-and-change" / "0002.eml"
DAVE, ALICE = "dave@example.com", "alice@example.com"


@pytest.fixture(scope="module")
def upstream() -> Iterator[FakeUpstream]:
    with FakeUpstream() as server:
        yield server


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory, upstream: FakeUpstream) -> Iterator[Served]:
    """Capture mode with filter sets for dave and alice and release to *@example.org."""
    sets = [
        {"recipients": [f"{user}@*"], "rules": str(RULES), "params": {"username": user}}
        for user in ("dave", "alice")
    ]
    release = {
        "allowed": ["*@example.org"],
        "upstream": {"host": "127.0.0.1", "port": upstream.port, "tls": "none"},
    }
    directory = tmp_path_factory.mktemp("served")
    with Served(
        directory,
        capture={"path": "mail", "release": release},
        filters={"sets": sets},
    ) as server:
        yield server


@pytest.fixture
async def http(served: Served) -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(served.url) as session:
        yield session


def token() -> str:
    """A word no other test's mail contains."""
    return f"t{uuid.uuid4().hex[:12]}"


async def messages(http: aiohttp.ClientSession, **params: str) -> dict:
    async with http.get("/api/v1/messages", params=params) as response:
        assert response.status == 200, await response.text()
        return await response.json()


async def test_captured_mail_lists_with_filters_and_status(served, http) -> None:
    queue_id = await served.send(CHANGE_BY_DAVE.read_bytes(), [DAVE, ALICE])
    page = await messages(http, q=f"rfc822msgid:{_message_id(CHANGE_BY_DAVE)}")
    (item,) = [item for item in page["messages"] if item["id"] == queue_id]
    assert page["total_exact"] and item["status"] == "captured"
    assert item["from"] == {"name": "Acceptance", "address": "trac@trac.example.org"}
    assert item["subject"].startswith("Re: [Acceptance] #1")
    assert {"to", "cc", "date", "size", "snippet", "attachments"} <= set(item)
    assert item["filters"][DAVE]["trashed"] and item["filters"][DAVE]["matched"]
    assert not item["filters"][ALICE]["trashed"] and item["filters"][ALICE]["in_inbox"]


async def test_view_as_recipient_searches_their_simulated_state(served, http) -> None:
    await served.send(CHANGE_BY_DAVE.read_bytes(), [DAVE, ALICE])
    query = f"rfc822msgid:{_message_id(CHANGE_BY_DAVE)} in:trash"
    as_dave = await messages(http, q=query, **{"as": DAVE})
    assert as_dave["messages"] and all(m["view"]["trashed"] for m in as_dave["messages"])
    assert as_dave["messages"][0]["view"]["recipient"] == DAVE
    assert (await messages(http, q=query, **{"as": ALICE}))["messages"] == []
    async with http.get("/api/v1/recipients") as response:
        addresses = {r["address"] for r in (await response.json())["recipients"]}
    assert {DAVE, ALICE} <= addresses


async def test_message_detail_has_everything_the_view_shows(served, http) -> None:
    word = token()
    queue_id = await served.send(mail(f"Ticket {word}", text=f"Body {word}\n"))
    async with http.get(f"/api/v1/messages/{queue_id}") as response:
        shown = await response.json()
    assert response.status == 200
    assert ["Subject", f"Ticket {word}"] in shown["headers"]
    assert shown["text"] == f"Body {word}\n" and shown["html"] is None
    assert shown["envelope"]["sender"] == "trac@example.org"
    assert shown["envelope"]["recipients"] == ["bob@example.org"]
    assert isinstance(shown["trace"], list) and shown["queue"] is None
    assert [event["event"] for event in shown["timeline"]] == ["received", "captured"]
    async with http.get("/api/v1/messages/NOSUCHID") as missing:
        assert missing.status == 404 and (await missing.json())["error"] == "not found"


async def test_raw_is_the_stored_bytes_and_parts_download(served, http) -> None:
    word = token()
    queue_id = await served.send(mail(word, attachment=("report.bin", b"\x00\x01binary")))
    async with http.get(f"/api/v1/messages/{queue_id}/raw") as response:
        body = await response.read()
    (stored,) = (served.directory / "mail" / "new").glob(f"*Q{queue_id}.*")
    assert body == stored.read_bytes() and response.content_type == "message/rfc822"
    async with http.get(f"/api/v1/messages/{queue_id}") as response:
        (attachment,) = (await response.json())["attachments"]
    assert attachment["filename"] == "report.bin"
    async with http.get(f"/api/v1/messages/{queue_id}/parts/{attachment['part']}") as response:
        assert await response.read() == b"\x00\x01binary"
        assert response.headers["Content-Disposition"].startswith("attachment")
    async with http.get(f"/api/v1/messages/{queue_id}/parts/99") as response:
        assert response.status == 404


async def test_html_is_served_for_a_sandbox_without_scripts_or_remote_loads(served, http) -> None:
    html = '<p>Hi</p><script>alert(1)</script><img src="http://example.net/x.png">'
    queue_id = await served.send(mail(token(), html=html))
    async with http.get(f"/api/v1/messages/{queue_id}/html") as response:
        policy = response.headers["Content-Security-Policy"]
        assert "<p>Hi</p>" in await response.text()
    assert "default-src 'none'" in policy and "sandbox" in policy
    assert "script-src" not in policy and "example.net" not in policy


async def test_a_malformed_query_answers_400_with_the_column(http) -> None:
    async with http.get("/api/v1/messages", params={"q": "from:(bob"}) as response:
        error = await response.json()
    assert response.status == 400
    assert error["column"] == 10 and error["expected"].startswith("')'")
    async with http.get("/api/v1/messages", params={"limit": "0"}) as response:
        assert response.status == 400


async def test_search_pages_newest_first(served, http) -> None:
    word = token()
    ids = [await served.send(mail(f"{word} number {n}")) for n in range(3)]
    first = await messages(http, q=f"subject:{word}", limit="2")
    second = await messages(http, q=f"subject:{word}", limit="2", offset="2")
    assert first["total"] == 3
    assert [m["id"] for m in first["messages"] + second["messages"]] == ids[::-1]


async def test_wait_answers_when_matching_mail_arrives(served, http) -> None:
    word = token()
    waiting = asyncio.ensure_future(
        http.get("/api/v1/messages/wait", params={"q": f"subject:{word}", "timeout": "20"})
    )
    await asyncio.sleep(0.3)
    assert not waiting.done()
    await served.send(mail(f"unrelated {token()}"))
    queue_id = await served.send(mail(f"the awaited {word}"))
    async with await waiting as response:
        assert response.status == 200
        assert (await response.json())["id"] == queue_id
    params = {"q": f"subject:{token()}", "timeout": "0.2"}
    async with http.get("/api/v1/messages/wait", params=params) as response:
        assert response.status == 408


async def test_events_announce_new_mail(served, http) -> None:
    async with http.get("/api/v1/events") as stream:
        assert stream.headers["Content-Type"] == "text/event-stream"
        queue_id = await served.send(mail(token()))
        data = None
        while data is None:
            line = (await asyncio.wait_for(stream.content.readline(), 10)).decode()
            if line.startswith("data: "):
                data = json.loads(line[6:])
    assert data == {"kind": "new", "ids": [queue_id]}


async def test_release_goes_upstream_only_to_allowed_recipients(served, http, upstream) -> None:
    word = token()
    queue_id = await served.send(mail(word))
    refused = f"/api/v1/messages/{queue_id}/release"
    async with http.post(refused, json={"to": ["bob@example.org", "eve@evil.test"]}) as response:
        assert response.status == 403
        assert "eve@evil.test" in (await response.json())["reason"]
    assert not any(word.encode() in m.content for m in upstream.messages)
    async with http.post(refused, json={"to": ["carol@example.org"]}) as response:
        released = await response.json()
    assert response.status == 200 and released["released"]
    (received,) = [m for m in upstream.messages if word.encode() in m.content]
    assert received.recipients == ["carol@example.org"]
    async with http.get(f"/api/v1/messages/{queue_id}") as response:
        shown = await response.json()
    assert shown["status"] == "released" and shown["timeline"][-1]["event"] == "released"


async def test_delete_one_matching_and_all(served, http) -> None:
    word = token()
    keep, drop = await served.send(mail(f"{word} keep")), await served.send(mail(f"{word} drop"))
    async with http.delete(f"/api/v1/messages/{drop}") as response:
        assert response.status == 200
    async with http.delete(f"/api/v1/messages/{drop}") as response:
        assert response.status == 404
    other = await served.send(mail(f"{word} other"))
    async with http.delete("/api/v1/messages", params={"q": f"subject:{word} other"}) as response:
        assert (await response.json())["deleted"] == [other]
    assert [m["id"] for m in (await messages(http, q=f"subject:{word}"))["messages"]] == [keep]
    async with http.delete("/api/v1/messages") as response:
        assert keep in (await response.json())["deleted"]
    assert (await messages(http))["total"] == 0


async def test_changes_from_another_site_are_refused(served, http) -> None:
    queue_id = await served.send(mail(token()))
    headers = {"Origin": "http://evil.test", "Sec-Fetch-Site": "cross-site"}
    async with http.delete(f"/api/v1/messages/{queue_id}", headers=headers) as response:
        assert response.status == 403
    async with http.get("/api/v1/messages", headers={"Host": "rebound.evil.test"}) as response:
        assert response.status == 403


async def test_queue_and_openapi(http) -> None:
    async with http.get("/api/v1/queue") as response:
        assert await response.json() == {"enabled": False, "messages": []}
    async with http.get("/api/v1/openapi.yaml") as response:
        spec = yaml.safe_load(await response.text())
    assert spec["openapi"].startswith("3.") and "/api/v1/messages/wait" in spec["paths"]


async def test_relay_mode_shows_the_delivery_timeline_and_the_queue(tmp_path) -> None:
    def refuse_bob(address: str) -> str | None:
        return "450 4.2.1 mailbox busy" if address.startswith("bob@") else None

    with FakeUpstream(rcpt_reply=refuse_bob) as upstream:
        relay = {"host": "127.0.0.1", "port": upstream.port, "tls": "none"}
        retry = {"min_backoff": 3600, "max_backoff": 3600}
        with Served(
            tmp_path,
            upstream=relay,
            capture={"enabled": True, "path": "mail"},
            queue={"path": "queue", "retry": retry},
        ) as served:
            async with aiohttp.ClientSession(served.url) as http:
                message = mail(token(), to="carol@example.org, bob@example.org")
                queue_id = await served.send(message)
                shown = await _eventually_get(http, f"/api/v1/messages/{queue_id}")
                async with http.get("/api/v1/queue") as response:
                    queue = await response.json()
    assert shown["status"] == "deferred"
    events = [(e["event"], e["recipients"]) for e in shown["timeline"] if e.get("recipients")]
    assert ("sent", ["carol@example.org"]) in events
    assert ("deferred", ["bob@example.org"]) in events
    assert any("mailbox busy" in e["detail"] for e in shown["timeline"])
    assert shown["queue"]["state"] == "deferred"
    (entry,) = queue["messages"]
    assert queue["enabled"] and entry["id"] == queue_id and entry["state"] == "deferred"
    assert entry["sent"] == ["carol@example.org"] and entry["next_attempt"]


async def _eventually_get(http: aiohttp.ClientSession, path: str) -> dict:
    for _ in range(200):
        async with http.get(path) as response:
            if response.status == 200:
                return await response.json()
        await asyncio.sleep(0.05)
    raise AssertionError(f"{path} never appeared")


def _message_id(path: Path) -> str:
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.lower().startswith("message-id:"):
            return line.split(":", 1)[1].strip()
    raise AssertionError(f"{path} has no Message-ID")


def test_openapi_documents_every_route(make_config) -> None:
    from relay.credentials import read_credentials
    from relay.service import Relay, web_settings
    from relay.web.app import STATIC, create_app

    config = make_config()
    app = create_app(Relay(config).web_deps(), web_settings(config, read_credentials(config)))
    spec = yaml.safe_load((STATIC.parent / "openapi.yaml").read_text())
    documented = {(path, method) for path, item in spec["paths"].items() for method in item}
    served_routes = {
        (route.resource.canonical, route.method.lower())
        for route in app.router.routes()
        if route.method != "HEAD" and route.resource.canonical not in ("/", "/static")
    }
    assert served_routes <= documented and documented - served_routes <= {
        (path, "parameters") for path in spec["paths"]
    }
