"""The sendmail command: Trac's real SendmailEmailSender through notify-relay-sendmail."""

from __future__ import annotations

import asyncio
import email
import email.policy
import email.utils
import json
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers import eventually
from trac.notification.mail import SendmailEmailSender
from trac.test import EnvironmentStub

FIXTURES = Path(__file__).parents[1] / "fixtures" / "trac"
#: The console script next to this interpreter (not a pyenv shim that may point elsewhere).
SENDMAIL = Path(sys.executable).parent / "notify-relay-sendmail"


def captured(relay) -> list[bytes]:
    return [path.read_bytes() for path in sorted((relay.capture.root / "new").iterdir())]


def trac_sender(path: Path | str) -> SendmailEmailSender:
    env = EnvironmentStub(enable=["trac.notification.mail.*"])
    env.config.set("notification", "sendmail_path", str(path))
    return SendmailEmailSender(env)


def run_sendmail(*args: str, stdin: bytes) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [str(SENDMAIL), *args], input=stdin, capture_output=True, timeout=60, check=False
    )


@pytest.fixture
async def relay(make_config, start_relay, tmp_path):
    """A capture-mode relay on a unix socket, found through $NOTIFY_RELAY_CONFIG."""
    return await start_relay(make_config(listen=[{"unix": str(tmp_path / "smtp.sock")}]))


async def test_trac_sendmail_sender_delivers_a_real_trac_message(relay, tmp_path, monkeypatch):
    monkeypatch.setenv("NOTIFY_RELAY_CONFIG", str(tmp_path / "relay.yaml"))
    original = (FIXTURES / "new-and-change" / "0001.eml").read_bytes()
    lf_message = original.replace(b"\r\n", b"\n")  # Trac: fix_eol(message, os.linesep)
    sender = trac_sender(SENDMAIL)
    recipients = ["carol@example.com", "alice@example.com", "bob@example.com"]

    await asyncio.to_thread(sender.send, "trac@trac.example.org", recipients, lf_message)

    (stored,) = await eventually(lambda: captured(relay))
    assert b"\n" not in stored.replace(b"\r\n", b"")  # every line ending is CRLF again
    parsed = email.message_from_bytes(stored)
    assert parsed["X-Trac-Ticket-ID"] == "1"
    assert parsed["Message-ID"] == email.message_from_bytes(original)["Message-ID"]
    body = parsed.get_payload()[0].get_payload(decode=True)
    expected = email.message_from_bytes(original).get_payload()[0].get_payload(decode=True)
    assert body == expected


async def test_lone_dot_line_is_text_with_dash_i(relay, tmp_path, monkeypatch):
    monkeypatch.setenv("NOTIFY_RELAY_CONFIG", str(tmp_path / "relay.yaml"))
    message = b"From: trac@example.org\nSubject: dots\n\nbefore\n.\nafter\n"
    sender = trac_sender(SENDMAIL)  # runs [path, "-i", "-f", from, rcpt]
    await asyncio.to_thread(sender.send, "trac@example.org", ["bob@example.org"], message)
    (stored,) = await eventually(lambda: captured(relay))
    assert stored.endswith(b"\r\nbefore\r\n.\r\nafter\r\n")


async def test_without_dash_i_a_lone_dot_ends_the_message(relay, tmp_path):
    config = str(tmp_path / "relay.yaml")
    stdin = b"Subject: dots\n\nbefore\n.\nnot sent\n"
    done = await asyncio.to_thread(
        run_sendmail, "-C", config, "-f", "a@x.org", "b@x.org", stdin=stdin
    )
    assert (done.returncode, done.stderr) == (0, b"")
    (stored,) = await eventually(lambda: captured(relay))
    assert stored.endswith(b"\r\nbefore\r\n") and b"not sent" not in stored


async def test_dash_t_takes_recipients_from_headers_and_drops_bcc(relay, tmp_path):
    stdin = (
        b'From: trac@example.org\nTo: "Doe, Bob" <bob@example.org>\n'
        b"Cc: =?utf-8?q?Car=C3=B6l=2C_QA?= <carol@example.org>\n"
        b"Bcc: dave@example.org,\n  erin@example.org\nSubject: t\n\nbody\n"
    )
    done = await asyncio.to_thread(
        run_sendmail, "-C", str(tmp_path / "relay.yaml"), "-t", "-oi", stdin=stdin
    )
    assert done.returncode == 0, done.stderr
    (stored,) = await eventually(lambda: captured(relay))
    assert b"dave@" not in stored and b"erin@" not in stored and b"Bcc" not in stored
    meta = next((relay.capture.root / "meta").iterdir()).read_text()
    for rcpt in ("bob@example.org", "carol@example.org", "dave@example.org", "erin@example.org"):
        assert rcpt in meta


async def test_refused_recipient_exits_ex_nouser(make_config, start_relay, tmp_path):
    upstream = {"host": "127.0.0.1", "port": 9, "tls": "none"}  # relay mode refuses "bob"
    await start_relay(
        make_config(listen=[{"unix": str(tmp_path / "smtp.sock")}], upstream=upstream)
    )
    done = await asyncio.to_thread(
        run_sendmail,
        "-C",
        str(tmp_path / "relay.yaml"),
        "-i",
        "-f",
        "a@x.org",
        "bob",
        stdin=b"Subject: x\n\nhi\n",
    )
    assert done.returncode == 67  # EX_NOUSER: "bob" is a user name, not an address
    assert b"recipient <bob> refused: 550 5.1.3" in done.stderr


def test_relay_down_is_ex_tempfail_with_one_line_reason(tmp_path):
    done = run_sendmail(
        "--connect",
        f"unix:{tmp_path}/missing.sock",
        "-i",
        "-f",
        "a@x.org",
        "b@x.org",
        stdin=b"Subject: x\n\nhi\n",
    )
    assert done.returncode == 75
    assert done.stderr.count(b"\n") == 1
    assert b"cannot reach the relay" in done.stderr and b"missing.sock" in done.stderr


def test_trac_reports_the_relay_being_down(tmp_path, monkeypatch):
    monkeypatch.setenv("NOTIFY_RELAY_CONFIG", str(tmp_path / "none.yaml"))
    (tmp_path / "none.yaml").write_text(f"listen: [{{unix: {tmp_path}/gone.sock}}]\n")
    with pytest.raises(Exception, match=r"Sendmail failed with \(75, .*cannot reach the relay"):
        trac_sender(SENDMAIL).send("trac@example.org", ["bob@example.org"], b"Subject: x\n\nhi\n")


def test_link_named_sendmail_is_the_sendmail_command(tmp_path):
    link = tmp_path / "sendmail"
    link.symlink_to(Path(sys.executable).parent / "notify-relay")
    done = subprocess.run(
        [str(link), "--connect", "127.0.0.1:1", "-i", "-f", "a@x.org", "b@x.org"],
        input=b"Subject: x\n\nhi\n",
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 75 and done.stderr.startswith(b"sendmail: cannot reach")


def captured_meta(relay) -> list[dict]:
    return [json.loads(path.read_text()) for path in (relay.capture.root / "meta").iterdir()]


async def test_an_option_among_recipients_is_a_recipient(relay, tmp_path):
    """``-fceo@...`` after a recipient does not change the envelope sender (sendmail's rule:
    options end at the first recipient)."""
    config = str(tmp_path / "relay.yaml")
    done = await asyncio.to_thread(
        run_sendmail,
        *("-C", config, "-i", "-f", "trac@x.org", "bob@x.org"),
        *("-fceo@company.com", "-tcarol@x.org"),
        stdin=b"Subject: x\n\nhi\n",
    )
    assert (done.returncode, done.stderr) == (0, b"")
    (meta,) = await eventually(lambda: captured_meta(relay))
    assert meta["sender"] == "trac@x.org"
    assert meta["recipients"] == ["bob@x.org", "-fceo@company.com", "-tcarol@x.org"]


async def test_a_config_option_after_a_recipient_is_not_read(relay, tmp_path):
    elsewhere = tmp_path / "elsewhere.yaml"
    elsewhere.write_text("listen: [{unix: /nonexistent/smtp.sock}]\n")
    done = await asyncio.to_thread(
        run_sendmail,
        *("-C", str(tmp_path / "relay.yaml"), "-i", "-f", "a@x.org", "bob@x.org"),
        f"-C{elsewhere}",
        stdin=b"Subject: x\n\nhi\n",
    )
    assert done.returncode == 67, done.stderr  # "-C..." was sent as a recipient and refused
    assert f"recipient <-C{elsewhere}> refused".encode() in done.stderr
    (meta,) = await eventually(lambda: captured_meta(relay))
    assert meta["recipients"] == ["bob@x.org"]


async def test_double_dash_ends_the_options(relay, tmp_path):
    done = await asyncio.to_thread(
        run_sendmail,
        *("-C", str(tmp_path / "relay.yaml"), "-f", "a@x.org", "--", "-i@x.org", "-t@x.org"),
        stdin=b"Subject: x\n\nbefore\n.\nafter\n",
    )
    assert (done.returncode, done.stderr) == (0, b"")
    (meta,) = await eventually(lambda: captured_meta(relay))
    assert meta["recipients"] == ["-i@x.org", "-t@x.org"]
    (stored,) = captured(relay)
    assert b"after" not in stored  # "-i@x.org" is a recipient, not -i


async def test_missing_from_date_and_message_id_are_added_as_postfix_does(relay, tmp_path):
    done = await asyncio.to_thread(
        run_sendmail,
        *("-C", str(tmp_path / "relay.yaml"), "-f", "trac@trac.example.org", "-F", "Trac Bot"),
        "bob@x.org",
        stdin=b"Subject: x\n\nhi\n",
    )
    assert (done.returncode, done.stderr) == (0, b"")
    (stored,) = await eventually(lambda: captured(relay))
    parsed = email.message_from_bytes(stored, policy=email.policy.default)
    assert parsed["From"] == "Trac Bot <trac@trac.example.org>"
    sent = email.utils.parsedate_to_datetime(parsed["Date"]).timestamp()
    assert abs(sent - time.time()) < 60
    assert re.fullmatch(r"<[^@<>\s]+@trac\.example\.org>", parsed["Message-ID"])
    assert [len(parsed.get_all(name)) for name in ("From", "Date", "Message-ID")] == [1, 1, 1]


async def test_message_id_of_a_bare_sender_uses_the_configured_domain(
    make_config, start_relay, tmp_path
):
    notification = {"smtp_default_domain": "example.org"}
    relay = await start_relay(
        make_config(listen=[{"unix": str(tmp_path / "smtp.sock")}], notification=notification)
    )
    done = await asyncio.to_thread(
        run_sendmail,
        *("-C", str(tmp_path / "relay.yaml"), "-f", "www-data", "bob@x.org"),
        stdin=b"Subject: x\n\nhi\n",
    )
    assert (done.returncode, done.stderr) == (0, b"")
    (stored,) = await eventually(lambda: captured(relay))
    parsed = email.message_from_bytes(stored, policy=email.policy.default)
    assert parsed["From"] == "www-data@example.org"
    assert parsed["Message-ID"].endswith("@example.org>")
    assert socket.gethostname() not in parsed["Message-ID"]


async def test_headers_the_message_has_are_kept(relay, tmp_path):
    head = (
        b"From: Me <me@x.org>\nDate: Sat, 21 Nov 2026 07:31:12 -0000\n"
        b"Message-ID: <1.2@x.org>\nSubject: x\n\nhi\n"
    )
    done = await asyncio.to_thread(
        run_sendmail, "-C", str(tmp_path / "relay.yaml"), "-f", "a@x.org", "b@x.org", stdin=head
    )
    assert (done.returncode, done.stderr) == (0, b"")
    (stored,) = await eventually(lambda: captured(relay))
    assert stored.startswith(head.replace(b"\n", b"\r\n").split(b"Subject")[0])
