"""Cleanup end to end: a Trac message through the relay reaches the upstream rewritten."""

from __future__ import annotations

import email
import email.policy
import subprocess
import sys

import aiosmtplib
from helpers import FIXTURES, eventually, port_of
from upstream import FakeUpstream

SHORT = FIXTURES / "trac" / "short-addr" / "0001.eml"


async def test_trac_message_arrives_rewritten(make_config, start_relay):
    with FakeUpstream() as upstream:
        config = make_config(
            upstream={"host": "127.0.0.1", "port": upstream.port, "tls": "none"},
            notification={
                "smtp_default_domain": "example.org",
                "smtp_always_cc": ["audit@example.org"],
                "smtp_subject_prefix": "[Acme]",
                "mime_encoding": "base64",
            },
        )
        relay = await start_relay(config)
        async with aiosmtplib.SMTP(hostname="127.0.0.1", port=port_of(relay)) as client:
            await client.sendmail("trac@trac.example.org", ["carol", "alice"], SHORT.read_bytes())
        (received,) = await eventually(lambda: upstream.messages)
    assert received.recipients == ["carol@example.org", "alice@example.org", "audit@example.org"]
    message = email.message_from_bytes(received.content, policy=email.policy.default)
    assert message["Subject"] == "[Acme] [Acceptance] #1: Acceptance ticket 1"
    assert message["Cc"] == "audit@example.org"
    (part,) = [p for p in message.walk() if p.get_content_type() == "text/plain"]
    assert part["Content-Transfer-Encoding"] == "base64"
    original = email.message_from_bytes(SHORT.read_bytes(), policy=email.policy.default)
    (before,) = [p for p in original.walk() if p.get_content_type() == "text/plain"]
    assert part.get_payload(decode=True) == before.get_payload(decode=True)
    assert message["Message-ID"] == original["Message-ID"]


def test_serve_reads_trac_ini_and_says_what_it_took(tmp_path):
    ini = tmp_path / "trac.ini"
    ini.write_text(
        "[notification]\nsmtp_default_domain = example.org\nsmtp_server = 127.0.0.1\n"
        "always_notify_owner = true\n"
    )
    eml = tmp_path / "m.eml"
    eml.write_bytes(SHORT.read_bytes())
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "relay",
            "rewrite",
            str(eml),
            "--to",
            "carol",
            "--trac-ini",
            str(ini),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert run.returncode == 0, run.stderr
    assert "RCPT TO:<carol@example.org>" in run.stdout
    assert "smtp_default_domain" in run.stdout and "smtp_server" in run.stdout
    assert "always_notify_owner" in run.stdout
