"""The page in real headless Chromium (Debian's chromium, driven by Playwright) against a
real ``serve``: list, search with inline errors, open a message by keyboard, switch the
recipient view, live updates, and the sandbox of an HTML mail. Takes a screenshot.

``UPDATE_SCREENSHOT=1`` also writes it to docs/images/screenshot.png (the README's).
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import smtplib
import tempfile
import threading
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import pytest
import tracmail
from helpers import FIXTURES, free_port
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
def browser() -> Iterator[object]:
    """One Chromium for the module (Playwright's sync API allows one per thread)."""
    profile = tempfile.mkdtemp(prefix="chromium-")
    with playwright.sync_playwright() as driver:
        context = chromium(driver, profile, viewport={"width": 1400, "height": 860})
        yield context
        context.close()
    shutil.rmtree(profile, ignore_errors=True)


def chromium(driver, profile: str, **options: object):
    """Debian's Chromium, headless, with its profile in ``profile``; ``options`` go to
    Playwright's ``launch_persistent_context``."""
    return driver.chromium.launch_persistent_context(
        profile, executable_path="/usr/bin/chromium", headless=True, args=CHROMIUM_ARGS, **options
    )


def new_tab(browser, url: str, ready: str) -> object:
    """A tab on ``url``, once ``ready`` (a selector) is on the page."""
    tab = browser.new_page()
    tab.set_default_timeout(15_000)
    tab.goto(url)
    tab.wait_for_selector(ready)
    return tab


@pytest.fixture(scope="module")
def page(served: Served, browser) -> object:
    return new_tab(browser, served.url, "#messages li")


def deliver(served: Served, message: EmailMessage | bytes, to: list[str] | None = None) -> str:
    """Send over SMTP from a thread of its own (Playwright's loop owns this one)."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, served.send(message, to)).result()


def view_as(page, address: str) -> None:
    """Type into the searchable "view as" field and apply it ("" for all recipients)."""
    field = page.locator("#as")
    field.fill(address)
    field.press("Enter")


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
    view_as(page, "dave@example.com")
    expect(page.locator("#messages li .chip.place-trash")).to_have_count(1)
    page.keyboard.press("7")
    expect(page.locator("#panel")).to_contain_text("captured")
    view_as(page, "")


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
    view_as(page, "alice@example.org")  # tracmail's alice has filters
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


def test_view_as_is_a_searchable_field(page, served) -> None:
    expect = playwright.expect
    field = page.locator("#as")
    assert field.evaluate("node => node.tagName") == "INPUT"
    options = page.locator("#as-options option")
    assert "dave@example.com" in options.evaluate_all("nodes => nodes.map(n => n.value)")
    search(page, "")
    view_as(page, "dave@example.com")
    expect(page.locator("#summary")).to_contain_text("for dave@example.com")
    view_as(page, "")
    expect(page.locator("#summary")).not_to_contain_text(" for ")


def test_a_thousand_recipients_show_collapsed_and_expand(page, served) -> None:
    expect = playwright.expect
    recipients = [f"user{n}@example.org" for n in range(1000)]
    deliver(served, mail("Announcement to everyone"), recipients)
    open_the_one(page, '"Announcement to everyone"', "Announcement to everyone")
    envelope = page.locator("#fields dd.envelope")
    expect(envelope).to_contain_text("user0@example.org")
    expect(envelope).not_to_contain_text("user999@example.org")
    more = envelope.get_by_role("button", name="+995 more")
    expect(more).to_be_visible()
    expect(page.locator("#recipient-tabs").get_by_role("button", name="+995 more")).to_be_visible()
    more.click()
    expect(envelope).to_contain_text("user999@example.org")


def test_raw_of_a_big_message_shows_the_start_and_a_download_link(page, served) -> None:
    expect = playwright.expect
    big = mail("Huge export", attachment=("export.bin", os.urandom(3 * 1024 * 1024)))
    deliver(served, big)
    open_the_one(page, '"Huge export"', "Huge export")
    page.keyboard.press("4")
    panel = page.locator("#panel")
    expect(panel).to_contain_text("first 256 KB")
    link = panel.get_by_role("link", name="Download the whole message")
    assert link.get_attribute("href").endswith("/raw")
    assert link.get_attribute("download", timeout=1000).endswith(".eml")
    shown = panel.locator("pre").inner_text()
    assert shown.startswith("Content-Type:") or "Subject: Huge export" in shown
    assert len(shown) <= 256 * 1024


def test_deep_links_select_the_message_and_follow_hash_changes(page, served) -> None:
    expect = playwright.expect
    first = deliver(served, mail("Deep link one"))
    second = deliver(served, mail("Deep link two"))
    page.goto(f"{served.url}/#id={first}")
    expect(page.locator("#subject")).to_have_text("Deep link one")
    expect(page.locator(f"#m-{first}")).to_have_attribute("aria-selected", "true")
    page.evaluate(f"location.hash = 'id={second}'")
    expect(page.locator("#subject")).to_have_text("Deep link two")
    expect(page.locator(f"#m-{second}")).to_have_attribute("aria-selected", "true")
    page.go_back()
    expect(page.locator("#subject")).to_have_text("Deep link one")


def test_what_relay_mode_would_refuse_is_marked(page, served) -> None:
    expect = playwright.expect
    data = b"From: app@example.org\nTo: bob\nSubject: Python idiom\n\nbare LF body\n"
    with ThreadPoolExecutor(1) as pool:
        pool.submit(_smtplib_send, served.smtp_port, ["bob"], data).result()
    open_the_one(page, '"Python idiom"', "Python idiom")
    expect(page.locator("#messages li .chip.refused")).to_have_text("relay mode would refuse")
    refusals = page.locator("#refusals")
    expect(refusals).to_be_visible()
    expect(refusals).to_contain_text("Relay mode would refuse this message")
    expect(refusals).to_contain_text("RCPT: 550 5.1.3 <bob> is a user name")
    expect(refusals).to_contain_text("DATA: 550 5.6.0")
    page.keyboard.press("4")
    expect(page.locator("#panel")).to_contain_text("as the client sent it")
    open_the_one(page, '"Deep link one"', "Deep link one")
    expect(refusals).to_be_hidden()


def _smtplib_send(port: int, recipients: list[str], data: bytes) -> None:
    with smtplib.SMTP("127.0.0.1", port) as client:
        client.sendmail("app@example.org", recipients, data)


@pytest.fixture(scope="module")
def queued(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """Relay mode towards a port nobody listens on: messages stay deferred."""
    upstream = {"host": "127.0.0.1", "port": free_port(), "tls": "none"}
    queue = {"path": "queue", "retry": {"min_backoff": "1h", "max_backoff": "2h"}}
    with Served(tmp_path_factory.mktemp("queued"), upstream=upstream, queue=queue) as server:
        yield server


def test_queue_actions_from_the_page(browser, queued) -> None:
    expect = playwright.expect
    queue_id = deliver(queued, mail("Waiting in the queue"))
    tab = new_tab(browser, queued.url, "#show-queue")
    tab.on("dialog", lambda dialog: dialog.accept())
    tab.locator("#show-queue").click()
    row = tab.locator(f"#queue-body tr[data-id='{queue_id}']")
    expect(row).to_contain_text("deferred")
    row.get_by_role("button", name="Hold").click()
    expect(row.locator("td.state")).to_have_text("hold")
    expect(tab.locator("#queue-result")).to_contain_text(f"{queue_id}: held")
    row.get_by_role("button", name="Release").click()
    expect(row.locator("td.state")).not_to_have_text("hold")
    expect(tab.locator("#queue-result")).to_contain_text(f"{queue_id}: released")
    row.get_by_role("button", name="Delete").click()
    expect(tab.locator("#queue-result")).to_contain_text(f"{queue_id}: deleted")
    expect(row).to_have_count(0)


def test_a_banner_shows_while_faults_are_injected(page, served) -> None:
    expect = playwright.expect
    banner = page.locator("#faults")
    expect(banner).to_be_hidden()
    rules = {"rules": [{"stage": "rcpt", "reply": "450 4.2.1 Busy", "recipients": ["flaky@*"]}]}
    request = urllib.request.Request(
        f"{served.url}/api/v1/faults", data=json.dumps(rules).encode(), method="PUT"
    )
    request.add_header("Content-Type", "application/json")
    urllib.request.urlopen(request, timeout=10).close()
    try:
        expect(banner).to_be_visible()  # no reload: the page checks every 2 s
        expect(banner).to_contain_text('Fault injection is on: rcpt for flaky@*: "450 4.2.1 Busy"')
    finally:
        off = urllib.request.Request(f"{served.url}/api/v1/faults", method="DELETE")
        urllib.request.urlopen(off, timeout=10).close()
    expect(banner).to_be_hidden()
