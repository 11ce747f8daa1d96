"""The page in real headless Chromium (Debian's chromium, driven by Playwright) against a
real ``serve``: list, search with inline errors, open a message by keyboard, switch the
recipient view, live updates, and the sandbox of an HTML mail. Takes a screenshot.

``UPDATE_SCREENSHOT=1`` also writes it to docs/images/screenshot.png (the README's).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import pytest
import tracmail
from helpers import FIXTURES
from served import Served, mail

playwright = pytest.importorskip("playwright.sync_api", reason="pip install -e '.[test]'")

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not Path("/usr/bin/chromium").exists(), reason="apt-get install chromium"),
]

CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "rules" / "trac-own-changes.yaml"
CHANGE_BY_DAVE = FIXTURES / "trac" / "new-and-change" / "0002.eml"
SCRIPTED = """<p id="probe">script did not run</p>
<script>document.getElementById('probe').textContent = 'script ran';
parent.document.title = 'pwned';</script>
<img id="remote" src="http://127.0.0.1:{port}/tracking.png" alt="remote">"""


class _Probe(BaseHTTPRequestHandler):
    hits: ClassVar[list[str]] = []

    def do_GET(self) -> None:
        self.hits.append(self.path)
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def remote() -> Iterator[ThreadingHTTPServer]:
    """A "remote" server an HTML mail points at; it records every request."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Probe)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()


@pytest.fixture(scope="module")
def served(
    tmp_path_factory: pytest.TempPathFactory, remote: ThreadingHTTPServer
) -> Iterator[Served]:
    directory = tmp_path_factory.mktemp("page")
    tracmail.fill(directory / "mail", 40)  # mail from before the start: indexed at start
    sets = [
        {"recipients": [f"{user}@*"], "rules": str(RULES), "params": {"username": user}}
        for user in ("dave", "alice")
    ]
    with Served(directory, filters={"sets": sets}) as server:
        asyncio.run(
            server.send(CHANGE_BY_DAVE.read_bytes(), ["dave@example.com", "alice@example.com"])
        )
        html = SCRIPTED.format(port=remote.server_address[1])
        asyncio.run(server.send(mail("Scripted newsletter", html=html)))
        yield server


@pytest.fixture(scope="module")
def page(served: Served) -> Iterator[object]:
    profile = tempfile.mkdtemp(prefix="chromium-")
    with playwright.sync_playwright() as driver:
        context = chromium(driver, profile, viewport={"width": 1400, "height": 860})
        tab = context.new_page()
        tab.set_default_timeout(15_000)
        tab.goto(served.url)
        tab.wait_for_selector("#messages li")
        yield tab
        context.close()
    shutil.rmtree(profile, ignore_errors=True)


def chromium(driver, profile: str, **options: object):
    """Debian's Chromium, headless, with its profile in ``profile``; ``options`` go to
    Playwright's ``launch_persistent_context``."""
    return driver.chromium.launch_persistent_context(
        profile, executable_path="/usr/bin/chromium", headless=True, args=CHROMIUM_ARGS, **options
    )


def deliver(served: Served, message: EmailMessage | bytes, to: list[str] | None = None) -> str:
    """Send over SMTP from a thread of its own (Playwright's loop owns this one)."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, served.send(message, to)).result()


def search(page, query: str) -> None:
    page.keyboard.press("Escape")
    page.keyboard.press("/")
    page.keyboard.press("Control+A")
    page.keyboard.press("Backspace")
    page.keyboard.type(query)
    page.keyboard.press("Enter")


def open_the_one(page, query: str, subject: str) -> None:
    """Search, wait for the one result, open it by keyboard."""
    search(page, query)
    playwright.expect(page.locator("#messages li")).to_have_count(1)
    playwright.expect(page.locator("#messages li")).to_contain_text(subject)
    page.keyboard.press("j")
    page.keyboard.press("Enter")
    playwright.expect(page.locator("#subject")).to_contain_text(subject)


def test_the_list_shows_captured_mail_newest_first(page) -> None:
    expect = playwright.expect
    expect(page.locator("#messages li")).to_have_count(42)
    expect(page.locator("#messages li").first).to_contain_text("Scripted newsletter")
    expect(page.locator("#summary")).to_contain_text("42 messages")


def test_a_malformed_query_shows_where_inline(page) -> None:
    search(page, "from:(")
    expect = playwright.expect
    expect(page.locator("#query-error")).to_be_visible()
    expect(page.locator("#query-error")).to_contain_text("(column 7)")
    search(page, "subject:acceptance")
    expect(page.locator("#query-error")).to_be_hidden()
    expect(page.locator("#messages li")).to_have_count(1)


def test_open_by_keyboard_and_switch_the_recipient_view(page) -> None:
    expect = playwright.expect
    open_the_one(page, "subject:acceptance", "[Acceptance] #1")
    view = page.locator("#recipient-view")
    page.get_by_role("button", name="dave@example.com").click()
    expect(view).to_contain_text("Trash")
    expect(view).to_contain_text("trac-own-changes")
    page.get_by_role("button", name="alice@example.com").click()
    expect(view).to_contain_text("Inbox")
    expect(view).not_to_contain_text("Trash")
    page.locator("#as").select_option("dave@example.com")
    expect(page.locator("#messages li .chip.place-trash")).to_have_count(1)
    page.keyboard.press("7")
    expect(page.locator("#panel")).to_contain_text("captured")
    page.locator("#as").select_option("")


def test_an_html_mail_runs_no_script_and_loads_nothing_remote(page, remote) -> None:
    expect = playwright.expect
    open_the_one(page, '"Scripted newsletter"', "Scripted newsletter")
    page.keyboard.press("2")
    frame = page.frame_locator("#panel iframe")
    expect(frame.locator("#probe")).to_have_text("script did not run")
    assert page.locator("#panel iframe").get_attribute("sandbox") == ""
    page.wait_for_timeout(500)
    assert page.title() != "pwned"
    assert _Probe.hits == []


def test_new_mail_appears_without_a_reload(page, served) -> None:
    expect = playwright.expect
    search(page, "")
    deliver(served, mail("Arrived while watching"))
    expect(page.locator("#messages li").first).to_contain_text("Arrived while watching")
    page.keyboard.press("k")  # the selection stayed on the open message, now second
    page.keyboard.press("Enter")
    expect(page.locator("#subject")).to_have_text("Arrived while watching")


def test_screenshot(page, tmp_path: Path) -> None:
    expect = playwright.expect
    page.locator("#as").select_option("alice@example.org")  # tracmail's alice has filters
    search(page, "label:trac -in:trash")
    expect(page.locator("#summary")).to_contain_text("36 messages for alice@example.org")
    page.locator("#messages li").nth(1).click()
    page.keyboard.press("1")
    expect(page.locator("#recipient-view")).to_contain_text("Trac")
    shot = tmp_path / "page.png"
    page.screenshot(path=str(shot))
    assert shot.stat().st_size > 10_000
    if os.environ.get("UPDATE_SCREENSHOT"):
        shutil.copyfile(shot, ROOT / "docs" / "images" / "screenshot.png")
