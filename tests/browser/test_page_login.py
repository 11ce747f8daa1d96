"""The page behind HTTP basic auth on an all-interfaces bind, in real headless Chromium:
once the browser has the login it sends it with every request of the page (list, detail,
live events, delete); the page itself needs nothing new."""

from __future__ import annotations

import asyncio
import shutil
import tempfile
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import write_users
from served import Served, mail
from test_page import chromium, deliver, open_the_one

playwright = pytest.importorskip("playwright.sync_api", reason="pip install -e '.[test]'")

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not Path("/usr/bin/chromium").exists(), reason="apt-get install chromium"),
]


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    directory = tmp_path_factory.mktemp("login")
    users = write_users(directory / "web-users", {"ann": "s3cret"})
    with Served(directory, web_host="0.0.0.0", web={"users_file": str(users)}) as server:
        asyncio.run(server.send(mail("Behind the login")))
        yield server


def test_without_the_login_nothing_is_shown(served) -> None:
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(f"{served.url}/api/v1/messages", timeout=10)
    assert refused.value.code == 401


def test_the_page_works_with_the_login(served) -> None:
    expect = playwright.expect
    profile = tempfile.mkdtemp(prefix="chromium-")
    try:
        with playwright.sync_playwright() as driver:
            login = {"username": "ann", "password": "s3cret"}
            context = chromium(driver, profile, http_credentials=login)
            page = context.new_page()
            page.set_default_timeout(15_000)
            page.goto(served.url)
            expect(page.locator("#messages li")).to_have_count(1)
            open_the_one(page, "subject:login", "Behind the login")
            deliver(served, mail("Arrived behind the login"))  # over the event stream
            expect(page.locator("#messages li").first).to_contain_text("Arrived behind")
            page.on("dialog", lambda dialog: dialog.accept())
            page.keyboard.press("#")  # DELETE, from the page's own origin, with the login
            expect(page.locator("#messages li")).to_have_count(1)
            context.close()
    finally:
        shutil.rmtree(profile, ignore_errors=True)
