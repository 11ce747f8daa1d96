"""The web app over its dependencies alone: a real capture store, no SMTP, no relay.

aiohttp's test client serves the app built by :func:`relay.web.app.create_app` from a
:class:`relay.web.deps.WebDeps`; the service is never imported.
"""

from __future__ import annotations

import ast
import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient, TestServer

import relay.web
from relay.capture.maildir import CaptureStore
from relay.metrics import Metrics
from relay.model import Envelope
from relay.record import Record
from relay.web.app import create_app
from relay.web.deps import Health, WebDeps, WebSettings
from relay.web.options import WebConfig

WEB = Path(relay.web.__file__).parent

MESSAGE = b"From: trac@example.org\r\nTo: bob@example.org\r\nSubject: #7 web deps\r\n\r\nHi\r\n"


def _imports(path: Path) -> set[str]:
    """Every module ``path`` imports, ``TYPE_CHECKING`` blocks included."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            found.add(node.module or "")
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return found


def test_no_web_module_imports_the_service_not_even_for_types() -> None:
    importers = [path.name for path in WEB.glob("*.py") if "relay.service" in _imports(path)]
    assert importers == []


@pytest.fixture
def store(tmp_path: Path) -> CaptureStore:
    store = CaptureStore(tmp_path / "mail")
    store.create()
    envelope = Envelope(sender="trac@example.org", recipients=("bob@example.org",))
    store.store(Record(queue_id="00000000000A1WEB01", envelope=envelope, message=MESSAGE))
    return store


@pytest.fixture
async def client(store: CaptureStore, tmp_path: Path) -> AsyncIterator[TestClient]:
    health = Health(
        listening=("127.0.0.1:2525",), storage=store.root, largest=1024, failing_since=None
    )
    deps = WebDeps(
        capture=store,
        spool=None,
        releaser=None,
        metrics=Metrics(),
        health=lambda: health,
    )
    settings = WebSettings(web=WebConfig(), timezone="UTC", release_allowed=())
    async with TestClient(TestServer(create_app(deps, settings))) as client:
        yield client


async def test_messages_are_listed_and_shown_from_the_store(client) -> None:
    listed = await (await client.get("/api/v1/messages?q=web")).json()
    assert [item["id"] for item in listed["messages"]] == ["00000000000A1WEB01"]
    shown = await (await client.get("/api/v1/messages/00000000000A1WEB01")).json()
    assert shown["queue"] is None and shown["envelope"]["recipients"] == ["bob@example.org"]


async def test_without_a_spool_or_releaser_the_queue_is_off_and_release_refused(client) -> None:
    assert await (await client.get("/api/v1/queue")).json() == {"enabled": False, "messages": []}
    response = await client.post(
        "/api/v1/messages/00000000000A1WEB01/release", json={"to": ["bob@example.org"]}
    )
    assert response.status == 403  # release.allowed is empty: release is off
    assert "release is off" in (await response.json())["reason"]


async def test_readiness_is_judged_from_the_health_the_service_gives(client) -> None:
    response = await client.get("/readyz")
    assert response.status == 200, await response.text()


#: The message's metadata as notify-relay wrote it before the file had a version.
UNVERSIONED = {
    "id": "00000000000A1WEB01",
    "sender": "trac@example.org",
    "recipients": ["bob@example.org"],
    "received_at": 100.0,
    "peer": "[127.0.0.1]:4000",
    "helo": "trac",
    "trace": [["smtp_from", "From set"]],
    "filters": {},
    "timeline": [],
    "captured_at": 101.0,
}
#: The message view's envelope of it, in the order the API has always printed.
ENVELOPE = {
    "sender": "trac@example.org",
    "recipients": ["bob@example.org"],
    "mail_options": [],
    "received_at": 100.0,
    "peer": "[127.0.0.1]:4000",
    "helo": "trac",
}


async def test_the_message_view_of_an_unversioned_file_and_of_none_is_unchanged(
    client, store
) -> None:
    meta = store.root / "meta" / "00000000000A1WEB01.json"
    meta.write_text(json.dumps(UNVERSIONED))
    shown = await (await client.get("/api/v1/messages/00000000000A1WEB01")).json()
    assert list(shown["envelope"].items()) == list(ENVELOPE.items())
    assert shown["trace"] == [{"option": "smtp_from", "change": "From set"}]
    assert [(event["at"], event["event"]) for event in shown["timeline"]] == [
        (100.0, "received"),
        (101.0, "captured"),
    ]
    assert (shown["filters"], shown["relay_refusals"], shown["original_kept"]) == ({}, [], False)
    meta.unlink()  # no metadata file: a null envelope, and nothing happened
    shown = await (await client.get("/api/v1/messages/00000000000A1WEB01")).json()
    assert list(shown["envelope"].items()) == [(name, None) for name in ENVELOPE]
    assert (shown["trace"], shown["timeline"], shown["relay_refusals"]) == ([], [], [])
    assert (shown["filters"], shown["original_kept"]) == ({}, False)
