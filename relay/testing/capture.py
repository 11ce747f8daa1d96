"""A capture relay for a test: start one in-process (or reach a running one by its API URL),
then read, wait for and clear what it captured.

Everything goes through the JSON API (``/api/v1/...``), so a relay the plugin started and
one running elsewhere behave alike; queries are Gmail syntax, evaluated by the relay.
"""

from __future__ import annotations

import base64
import configparser
import email.policy
import json
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path
from typing import Any

import yaml

from relay.config import RelayConfig, load_config
from relay.service import Relay
from relay.testing.loop import LoopThread

__all__ = ["CapturedMessage", "InProcessRelay", "MailCapture", "write_config"]

_POLL = 0.05
_PAGE = 500


def write_config(directory: Path, **sections: Any) -> RelayConfig:
    """Write ``directory/relay.yaml`` (SMTP and web on free loopback ports, the Maildir and
    queue under ``directory``) with ``sections`` on top, and load it. A section given as a
    mapping adds to these defaults (``capture={"faults": ...}`` keeps the Maildir path)."""
    defaults: dict[str, Any] = {
        "listen": ["127.0.0.1:0"],
        "capture": {"path": "mail"},
        "queue": {"path": "queue"},
        "web": {"listen": "127.0.0.1:0"},
    }
    data = {**defaults, **sections}
    for name, value in defaults.items():
        if isinstance(value, dict) and isinstance(sections.get(name), dict):
            data[name] = {**value, **sections[name]}
    path = directory / "relay.yaml"
    path.write_text(yaml.safe_dump(json.loads(json.dumps(data, default=str))))
    return load_config(path)


class InProcessRelay:
    """A relay on its own event loop in a thread of this process."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._thread: LoopThread | None = None
        self._relay: Relay | None = None

    def start(self, **sections: Any) -> tuple[str, tuple[str, int]]:
        """Start with ``sections`` (stopping the one running, once the new config loaded);
        return the API's URL and the SMTP (host, port). A bad section raises
        :class:`~relay.errors.ConfigError` naming its key, and the running relay stays."""
        config = write_config(self.directory, **sections)
        self.stop()
        thread = LoopThread(name="mail-capture")
        thread.start()
        relay = Relay(config)
        try:
            thread.call(relay.start())
        except BaseException:
            thread.stop()
            raise
        self._thread, self._relay = thread, relay
        if relay.web is None:
            raise RuntimeError("the capture relay's web API did not start (see the log)")
        host, port = relay.bound[0].rsplit(":", 1)
        return relay.web.url.rstrip("/"), (host.strip("[]"), int(port))

    def stop(self) -> None:
        """Stop the relay and its loop (captured mail stays in the Maildir)."""
        if self._thread is not None and self._relay is not None:
            self._thread.call(self._relay.stop())
            self._thread.stop()
        self._thread = self._relay = None


@dataclass(frozen=True, slots=True, kw_only=True)
class CapturedMessage:
    """One captured message.

    ``sender``/``recipients``: the envelope; ``from_``, ``to``, ``cc``: the decoded header
    values ("" when absent); ``text``/``html``: the decoded bodies (None when absent);
    ``trace``: the rewrite trace as (option, change) pairs; ``filters``: per-recipient
    simulated Gmail filter results (empty without filters).
    """

    id: str
    sender: str
    recipients: tuple[str, ...]
    subject: str
    from_: str
    to: str
    cc: str
    text: str | None
    html: str | None
    raw: bytes
    message: EmailMessage
    trace: tuple[tuple[str, str], ...]
    filters: dict[str, Any]

    def describe(self) -> str:
        """One line for failure reports: subject, From and To."""
        return f"subject {self.subject!r}, from {self.from_!r}, to {self.to!r}"


def _message(detail: dict[str, Any], raw: bytes) -> CapturedMessage:
    parsed = BytesParser(policy=email.policy.default).parsebytes(raw)
    assert isinstance(parsed, EmailMessage)
    envelope = detail.get("envelope") or {}

    def header(name: str) -> str:
        value = parsed.get(name)
        return str(value) if value is not None else ""

    return CapturedMessage(
        id=detail["id"],
        sender=envelope.get("sender") or "",
        recipients=tuple(envelope.get("recipients") or ()),
        subject=detail.get("subject") or "",
        from_=header("From"),
        to=header("To"),
        cc=header("Cc"),
        text=detail.get("text"),
        html=detail.get("html"),
        raw=raw,
        message=parsed,
        trace=tuple((step["option"], step["change"]) for step in detail.get("trace") or ()),
        filters=detail.get("filters") or {},
    )


def _without_credentials(url: str) -> tuple[str, str | None]:
    """``url`` without a ``user:password@`` part, and the basic-auth header that part makes."""
    parts = urllib.parse.urlsplit(url)
    if parts.username is None:
        return url, None
    login = urllib.parse.unquote(parts.username) + ":" + urllib.parse.unquote(parts.password or "")
    netloc = parts.netloc.rpartition("@")[2]
    header = "Basic " + base64.b64encode(login.encode()).decode()
    return urllib.parse.urlunsplit(parts._replace(netloc=netloc)), header


class MailCapture:
    """What a capture relay received, for assertions; see :mod:`relay.testing.plugin`.

    ``url`` is the relay's web address (``http://login:password@...`` for one with
    ``web.users_file``), ``smtp`` where to send; ``relay`` the relay this object started
    (None: one running elsewhere, which :meth:`configure` cannot restart).
    """

    def __init__(
        self, url: str, smtp: tuple[str, int], *, relay: InProcessRelay | None = None
    ) -> None:
        self.url, self._authorization = _without_credentials(url.rstrip("/"))
        self.host, self.port = smtp
        self._relay = relay
        self._seen: dict[str, CapturedMessage] = {}
        self.configured = False

    @classmethod
    def start(cls, directory: Path, **sections: Any) -> MailCapture:
        """Start a capture relay in this process, its files under ``directory``."""
        relay = InProcessRelay(directory)
        url, smtp = relay.start(**sections)
        return cls(url, smtp, relay=relay)

    @classmethod
    def connect(cls, url: str) -> MailCapture:
        """Use the relay whose page and API are at ``url``; its SMTP address is the first
        listener ``/readyz`` reports."""
        capture = cls(url, ("", 0))
        listening = capture._get("/readyz", ok=(200, 503))["checks"]["listeners"]["detail"]
        host, _, port = listening.split(", ")[0].rpartition(":")
        if not port.isdigit():
            raise RuntimeError(f"{url} reports no SMTP listener: {listening}")
        capture.host, capture.port = host.strip("[]"), int(port)
        return capture

    def close(self) -> None:
        """Stop the relay if this object started it."""
        if self._relay is not None:
            self._relay.stop()

    # -- reading ---------------------------------------------------------------------------

    @property
    def messages(self) -> list[CapturedMessage]:
        """Every message captured so far, oldest first."""
        return self._find("")

    def wait(
        self, query: str | None = None, *, count: int = 1, timeout: float = 5.0
    ) -> list[CapturedMessage]:
        """Block until at least ``count`` messages match Gmail ``query`` (None: any); return
        the matches, oldest first. After ``timeout`` seconds raise ``AssertionError`` listing
        what did arrive."""
        deadline = time.monotonic() + timeout
        while True:
            found = self._find(query or "")
            if len(found) >= count:
                return found
            if time.monotonic() >= deadline:
                wanted = f"{count} message{'s' if count != 1 else ''}"
                matching = f" matching {query!r}" if query else ""
                raise AssertionError(
                    f"waited {timeout:g} s for {wanted}{matching}; {len(found)} matched. "
                    + self._arrived()
                )
            time.sleep(_POLL)

    def assert_none(self, query: str | None = None, *, within: float = 0.5) -> None:
        """Fail if a message matching ``query`` (None: any) is here or arrives within
        ``within`` seconds."""
        deadline = time.monotonic() + within
        while True:
            found = self._find(query or "")
            if found:
                matching = f" matching {query!r}" if query else ""
                lines = "".join(f"\n  - {message.describe()}" for message in found)
                raise AssertionError(f"expected no message{matching}, got {len(found)}:{lines}")
            if time.monotonic() >= deadline:
                return
            time.sleep(_POLL)

    # -- changing --------------------------------------------------------------------------

    def clear(self) -> None:
        """Delete every captured message."""
        self._request("DELETE", "/api/v1/messages")
        self._seen.clear()

    def configure(self, **sections: Any) -> None:
        """Restart the relay with these config sections (``notification={...}``,
        ``filters={...}``, ``capture={...}`` ...); captured mail stays (see :meth:`clear`).
        ``host`` and ``port`` change. A bad section raises ``ConfigError`` naming the key
        and leaves the relay as it was."""
        if self._relay is None:
            raise RuntimeError(
                f"configure() restarts a relay the plugin started; {self.url} runs elsewhere"
            )
        self.url, (self.host, self.port) = self._relay.start(**sections)
        self.configured = bool(sections)

    def trac_ini(self, path: str | Path) -> Path:
        """Point the trac.ini at ``path`` at this relay: set its ``[notification]``
        ``smtp_enabled``, ``smtp_server`` and ``smtp_port`` (other settings stay)."""
        path = Path(path)
        ini = configparser.RawConfigParser()
        ini.optionxform = str  # type: ignore[assignment,method-assign]  # keep names as written
        ini.read(path, encoding="utf-8")
        if not ini.has_section("notification"):
            ini.add_section("notification")
        ini.set("notification", "smtp_enabled", "true")
        ini.set("notification", "smtp_server", self.host)
        ini.set("notification", "smtp_port", str(self.port))
        with path.open("w", encoding="utf-8") as file:
            ini.write(file)
        return path

    # -- the API ---------------------------------------------------------------------------

    def _find(self, query: str) -> list[CapturedMessage]:
        """Every message matching ``query``, oldest first."""
        ids: list[str] = []
        while True:
            params = urllib.parse.urlencode({"q": query, "limit": _PAGE, "offset": len(ids)})
            page = self._get(f"/api/v1/messages?{params}")
            ids += [item["id"] for item in page["messages"]]
            if len(page["messages"]) < _PAGE:
                break
        return [self._read(queue_id) for queue_id in reversed(ids)]

    def _read(self, queue_id: str) -> CapturedMessage:
        found = self._seen.get(queue_id)
        if found is None:
            detail = self._get(f"/api/v1/messages/{queue_id}")
            raw = self._request("GET", f"/api/v1/messages/{queue_id}/raw")
            found = self._seen[queue_id] = _message(detail, raw)
        return found

    def _arrived(self) -> str:
        arrived = self.messages
        if not arrived:
            return "Nothing arrived."
        lines = "".join(f"\n  - {message.describe()}" for message in arrived)
        return f"{len(arrived)} arrived:{lines}"

    def _get(self, path: str, *, ok: tuple[int, ...] = (200,)) -> Any:
        return json.loads(self._request("GET", path, ok=ok))

    def _request(self, method: str, path: str, *, ok: tuple[int, ...] = (200,)) -> bytes:
        request = urllib.request.Request(self.url + path, method=method)
        if self._authorization:
            request.add_header("Authorization", self._authorization)
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                body: bytes = response.read()
                return body
        except urllib.error.HTTPError as exc:
            body = exc.read()
            if exc.code in ok:
                return body
            try:
                reason = json.loads(body).get("reason", "")
            except ValueError:
                reason = body.decode("utf-8", "replace")
            if exc.code == 400:
                raise ValueError(reason) from None
            raise RuntimeError(f"{method} {self.url}{path}: {exc.code} {reason}") from None
