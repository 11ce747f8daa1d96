"""What the wheel ships, where the version comes from, and the aiosmtpd internals we rely on."""

from __future__ import annotations

import asyncio
import email
import hashlib
import inspect
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import aiosmtpd
import pytest
from aiosmtpd.smtp import SMTP

import relay
from relay.receive.data import WholeBufferData
from relay.receive.server import _RelaySMTP

ROOT = Path(__file__).resolve().parents[3]

#: sha256 of aiosmtpd 1.4.6's ``SMTP._handle_client`` source, which _RelaySMTP overrides.
HANDLE_CLIENT_SHA256 = "0e4d096403af6c74c87b2fe722c213884e2140a9388e95feb05aec2f39e05556"
#: sha256 of aiosmtpd 1.4.6's ``SMTP.smtp_DATA`` source, which _RelaySMTP replaces.
SMTP_DATA_SHA256 = "3a33f30d3fd6d02f39c7d78a08288bffea9170525b62e2161568041ae7e018df"


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> zipfile.ZipFile:
    """The wheel `pip wheel --no-deps .` builds from this checkout."""
    out = tmp_path_factory.mktemp("wheel")
    command = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", str(ROOT), "-w"]
    subprocess.run([*command, str(out)], check=True, capture_output=True, timeout=300)
    (built,) = out.glob("notify_relay-*.whl")
    return zipfile.ZipFile(built)


def test_the_wheel_ships_the_rules_and_not_the_screenshot(wheel: zipfile.ZipFile) -> None:
    names = set(wheel.namelist())
    shipped = {name.removeprefix("relay/rules/") for name in names if "/rules/" in name}
    assert shipped == {path.name for path in (ROOT / "rules").glob("*.yaml")}, names
    assert not [name for name in names if name.endswith("screenshot.png")], "it is docs/images'"
    assert "relay/web/openapi.yaml" in names and "relay/py.typed" in names


def test_the_wheel_metadata_has_the_one_version_and_the_license(wheel: zipfile.ZipFile) -> None:
    (metadata,) = [name for name in wheel.namelist() if name.endswith(".dist-info/METADATA")]
    fields = email.message_from_bytes(wheel.read(metadata))
    assert fields["Version"] == relay.__version__
    assert fields["License"] == "MIT"
    assert "License :: OSI Approved :: MIT License" in fields.get_all("Classifier")
    assert "the notify-relay authors" in (ROOT / "LICENSE").read_text()
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert "version" not in project and "version" in project["dynamic"]


def test_the_changelog_has_an_entry_for_the_version() -> None:
    text = (ROOT / "CHANGELOG.md").read_text()
    assert "Keep a Changelog" in text and f"## [{relay.__version__}]" in text


def test_aiosmtpd_handle_client_is_what_the_listener_overrides() -> None:
    """_RelaySMTP._handle_client runs the allowed_networks and connection-cap checks
    before the greeting, then calls aiosmtpd's private SMTP._handle_client. A new aiosmtpd
    may change that method; pyproject.toml caps aiosmtpd below 1.5 until it is re-checked."""
    source = inspect.getsource(SMTP._handle_client)
    what = (
        f"aiosmtpd {aiosmtpd.__version__} changed SMTP._handle_client: re-check that "
        "relay/receive/server.py's _RelaySMTP._handle_client still runs before the 220 "
        "greeting, once per connection (not again after STARTTLS), and that calling "
        "super()._handle_client() still serves the session; then update HANDLE_CLIENT_SHA256 "
        "here and the aiosmtpd bound in pyproject.toml"
    )
    assert inspect.iscoroutinefunction(SMTP._handle_client), what
    assert str(inspect.signature(SMTP._handle_client)) == "(self) -> None", what
    assert "await self.push('220 " in source, what
    made = inspect.getsource(SMTP.connection_made)
    assert made.count("self._handle_client()") == 1 and "seen_starttls" in made, what
    assert hashlib.sha256(source.encode()).hexdigest() == HANDLE_CLIENT_SHA256, what
    assert "super()._handle_client()" in inspect.getsource(_RelaySMTP._handle_client)


async def test_aiosmtpd_smtp_data_is_what_the_listener_replaces() -> None:
    """WholeBufferData.smtp_DATA (a base of _RelaySMTP) keeps aiosmtpd's checks, replies,
    hook call and reset, and reads the section with relay/receive/data.py, which raises the
    private StreamReader._limit for it. A new aiosmtpd or Python may change either."""
    source = inspect.getsource(SMTP.smtp_DATA)
    what = (
        f"aiosmtpd {aiosmtpd.__version__} changed SMTP.smtp_DATA: compare it with "
        "relay/receive/server.py's _RelaySMTP.smtp_DATA (checks before the 354, the replies "
        "to a long line and to too much data, the DATA hook, _set_post_data_state) and "
        "relay/receive/data.py (framing, size and line limits, unstuffing); then update "
        "SMTP_DATA_SHA256 here and the aiosmtpd bound in pyproject.toml"
    )
    assert hashlib.sha256(source.encode()).hexdigest() == SMTP_DATA_SHA256, what
    assert issubclass(_RelaySMTP, WholeBufferData)
    ours = inspect.getsource(WholeBufferData.smtp_DATA)
    for kept in ("'503 Error: need RCPT command'", "'501 Syntax: DATA'", "_call_handler_hook"):
        assert kept in source and kept.replace("'", '"') in ours, kept
    assert SMTP.line_length_limit == 1001, what
    reader = asyncio.StreamReader(limit=SMTP.line_length_limit)
    assert reader._limit == SMTP.line_length_limit
    reader._limit = 4
    reader.feed_data(b"12345\r\n")
    with pytest.raises(asyncio.LimitOverrunError):
        await reader.readuntil(b"\r\n")  # readuntil honours a changed _limit
