"""The page and API against DNS rebinding, cross-site changes and strangers, on every bind.

Real HTTP against the relay's own aiohttp server, bound to 127.0.0.1 or to 0.0.0.0 (traffic
still goes to 127.0.0.1 only): a Host that is not this relay's is refused before anything
is read; a change (POST, DELETE) from another origin is refused; with ``web.users_file``
every request but the health probes needs HTTP basic auth; and a bind beyond loopback
without it does not start unless ``web.allow_unauthenticated`` says so.
"""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import make_mocked_request
from helpers import eventually, submit, write_users

from relay.credentials import read_credentials
from relay.errors import ConfigError
from relay.service import Relay, web_settings
from relay.web.app import create_app

REBOUND = "rebind.attacker.test"
NAMED = "relay.example.test"


def web_port(relay) -> int:
    return int(relay.web.url.rstrip("/").rsplit(":", 1)[1])


@pytest.fixture
def users_file(tmp_path) -> str:
    return str(write_users(tmp_path / "web-users", {"ann": "s3cret"}))


@pytest.fixture
async def serve_web(make_config, start_relay) -> AsyncIterator[Callable[..., Any]]:
    """Start a capture relay with ``web`` settings; return it and a session on 127.0.0.1."""
    sessions: list[aiohttp.ClientSession] = []

    async def start(**web: Any) -> tuple[Any, aiohttp.ClientSession]:
        relay = await start_relay(make_config(web={"listen": "127.0.0.1:0", **web}))
        await submit(relay, ["bob@example.org"])
        await eventually(lambda: relay.capture.index.count() == 1)
        session = aiohttp.ClientSession(f"http://127.0.0.1:{web_port(relay)}")
        sessions.append(session)
        return relay, session

    yield start
    for session in sessions:
        await session.close()


BINDS = {
    "loopback": {},
    "all-interfaces": {"listen": "0.0.0.0:0", "allow_unauthenticated": True},
}


@pytest.fixture(params=list(BINDS))
async def bound(request, serve_web) -> AsyncIterator[tuple[Any, aiohttp.ClientSession]]:
    return await serve_web(**BINDS[request.param], allowed_hosts=[NAMED])


async def status(http: aiohttp.ClientSession, method: str, path: str, **headers: str) -> int:
    async with http.request(method, path, headers=headers) as response:
        return response.status


async def test_a_rebound_host_name_reads_and_changes_nothing(bound) -> None:
    relay, http = bound
    (item,) = relay.capture.search("").items
    for method, path in [
        ("GET", "/api/v1/messages"),
        ("GET", f"/api/v1/messages/{item['id']}/raw"),
        ("GET", "/"),
        ("DELETE", f"/api/v1/messages/{item['id']}"),
        ("DELETE", "/api/v1/messages"),
        ("POST", f"/api/v1/messages/{item['id']}/release"),
    ]:
        origin = f"http://{REBOUND}:{web_port(relay)}"
        assert await status(http, method, path, Host=REBOUND, Origin=origin) == 403, path
    assert relay.capture.index.count() == 1


async def test_own_names_and_addresses_are_served(bound) -> None:
    relay, http = bound
    port = web_port(relay)
    for host in (f"127.0.0.1:{port}", f"localhost:{port}", "LOCALHOST", f"{NAMED}:8025", NAMED):
        assert await status(http, "GET", "/api/v1/messages", Host=host) == 200, host


async def test_changes_from_another_origin_are_refused(bound) -> None:
    relay, http = bound
    (item,) = relay.capture.search("").items
    path, host = f"/api/v1/messages/{item['id']}", f"{NAMED}:8025"
    assert await status(http, "DELETE", path, Host=host, Origin="http://evil.test") == 403
    assert await status(http, "DELETE", path, Host=host, **{"Sec-Fetch-Site": "cross-site"}) == 403
    assert await status(http, "DELETE", path, Host=host, Origin="null") == 403
    assert relay.capture.index.count() == 1
    assert await status(http, "DELETE", path, Host=host, Origin=f"https://{host}") == 200


class ArrivedAt:
    """A transport whose connection came in on ``address``: the seam for a container's
    own address, where no test traffic may go (tests talk to 127.0.0.1 only)."""

    def __init__(self, address: str) -> None:
        self.address = address

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return (self.address, 8025) if name == "sockname" else default


@pytest.mark.parametrize("local", ["172.17.0.2", "10.1.2.3", "2001:db8::5"])
async def test_the_host_is_checked_whatever_address_the_connection_came_to(
    local, make_config
) -> None:
    """The shipped containers listen on 0.0.0.0 and are reached at the container's own
    address: the Host check must not depend on that address being loopback."""
    config = make_config(web={"listen": "0.0.0.0:8025", "allow_unauthenticated": True})
    app = create_app(Relay(config).web_deps(), web_settings(config, read_credentials(config)))
    (middleware,) = app.middlewares

    async def handler(request: web.Request) -> web.Response:
        return web.Response(text="served")

    async def answer(host: str) -> int:
        headers = {"Host": host}
        request = make_mocked_request(
            "GET", "/", headers=headers, app=app, transport=ArrivedAt(local)
        )
        return (await middleware(request, handler)).status

    assert await answer(f"{REBOUND}:8025") == 403
    assert await answer(f"[{local}]:8025" if ":" in local else f"{local}:8025") == 200
    assert await answer("localhost:8025") == 200


def test_a_bind_beyond_loopback_without_auth_does_not_start(make_config) -> None:
    with pytest.raises(ConfigError) as refused:
        make_config(web={"listen": "0.0.0.0:0"})
    assert refused.value.key == "web.listen"
    assert "web.users_file" in str(refused.value)
    assert "web.allow_unauthenticated" in str(refused.value)


def test_web_settings_that_would_not_work_are_named(make_config, users_file, tmp_path) -> None:
    for web_section, key in [
        ({"allowed_hosts": ["https://relay.example.org"]}, "web.allowed_hosts"),
        ({"allowed_hosts": ["relay.example.org:8025"]}, "web.allowed_hosts"),
        ({"users_file": str(tmp_path / "missing")}, "web.users_file"),
    ]:
        with pytest.raises(ConfigError) as refused:
            make_config(web={"listen": "127.0.0.1:0", **web_section})
        assert refused.value.key == key
    Path(users_file).chmod(0o644)
    with pytest.raises(ConfigError, match="readable by group or others") as refused:
        make_config(web={"listen": "0.0.0.0:0", "users_file": users_file})
    assert refused.value.key == "web.users_file"


def basic(login: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{login}:{password}".encode()).decode()


@pytest.mark.parametrize("listen", ["127.0.0.1:0", "0.0.0.0:0"])
async def test_with_a_users_file_every_request_needs_basic_auth(
    listen, users_file, serve_web
) -> None:
    _, http = await serve_web(listen=listen, users_file=users_file)
    async with http.get("/api/v1/messages") as response:
        assert response.status == 401
        assert response.headers["WWW-Authenticate"].startswith('Basic realm="notify-relay"')
    for credentials in ("ann:wrong", "bob:s3cret", "ann"):
        login, _, password = credentials.partition(":")
        auth = basic(login, password)
        assert await status(http, "GET", "/api/v1/messages", Authorization=auth) == 401
    assert await status(http, "GET", "/api/v1/messages", Authorization="Basic !!") == 401
    good = basic("ann", "s3cret")
    for _ in range(3):  # the page asks often: checks after the first are cached
        assert await status(http, "GET", "/api/v1/messages", Authorization=good) == 200
    assert await status(http, "GET", "/", Authorization=good) == 200
    assert (
        await status(http, "GET", "/livez") == 200 and await status(http, "GET", "/readyz") == 200
    )
    assert await status(http, "GET", "/metrics") == 401
    rebound = await status(http, "GET", "/api/v1/messages", Host=REBOUND, Authorization=good)
    assert rebound == 403


async def test_a_reload_puts_new_hosts_and_users_in_force(
    serve_web, make_config, users_file, caplog
) -> None:
    relay, http = await serve_web()
    assert await status(http, "GET", "/api/v1/messages", Host=NAMED) == 403
    relay.reload(
        make_config(web={"listen": "0.0.0.0:0", "users_file": users_file, "allowed_hosts": [NAMED]})
    )
    good = basic("ann", "s3cret")
    assert await status(http, "GET", "/api/v1/messages", Host=NAMED) == 401
    assert await status(http, "GET", "/api/v1/messages", Host=NAMED, Authorization=good) == 200
    assert "a restart is needed to apply web.listen" in caplog.text
