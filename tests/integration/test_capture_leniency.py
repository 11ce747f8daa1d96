"""Capture mode keeps what relay mode refuses (bare LF data, bare user names) and shows why:
in the metadata, the API, ``mail show`` and the raw view of the original. Relay mode keeps
refusing; syntax and smuggling defences stay refusals in both modes.
"""

from __future__ import annotations

import asyncio
import json
import smtplib
from email.message import EmailMessage

import aiohttp
import aiosmtplib
import pytest
from helpers import port_of

from relay.cli.main import main

BARE_LF_REPLY = "550 5.6.0 Message refused: bare CR or LF in the data"


def python_idiom_message() -> bytes:
    """What ``EmailMessage().as_bytes()`` gives: LF line ends (the usual Python idiom)."""
    message = EmailMessage()
    message["From"] = "app@example.org"
    message["To"] = "dev@example.org"
    message["Subject"] = "from a Python app"
    message.set_content("line one\nline two\n")
    return message.as_bytes()


def send_with_smtplib(port: int, recipients: list[str], data: bytes) -> dict:
    with smtplib.SMTP("127.0.0.1", port) as client:
        return client.sendmail("app@example.org", recipients, data)


async def api(relay, path: str) -> tuple[int, bytes]:
    async with (
        aiohttp.ClientSession() as http,
        http.get(relay.web.url.rstrip("/") + path) as response,
    ):
        return response.status, await response.read()


def only_meta(relay) -> dict:
    (path,) = (relay.capture.root / "meta").glob("*.json")
    return json.loads(path.read_text())


async def test_bare_lf_message_from_smtplib_is_kept_with_a_note(make_config, start_relay):
    relay = await start_relay(make_config())
    data = python_idiom_message()
    assert b"\r\n" not in data
    refused = await asyncio.to_thread(send_with_smtplib, port_of(relay), ["dev@example.org"], data)
    assert refused == {}
    (stored,) = (relay.capture.root / "new").iterdir()
    assert b"\n" not in stored.read_bytes().replace(b"\r\n", b"")  # line ends normalised
    meta = only_meta(relay)
    (note,) = meta["relay_refusals"]
    assert note["stage"] == "DATA" and note["reply"].startswith(BARE_LF_REPLY)
    status, body = await api(relay, f"/api/v1/messages/{meta['id']}")
    assert status == 200, body
    detail = json.loads(body)
    assert status == 200 and detail["relay_refusals"] == [note]
    assert detail["original_kept"] is True
    status, raw = await api(relay, f"/api/v1/messages/{meta['id']}/raw")
    assert status == 200 and raw == data + b"\r\n"  # as sent: smtplib ends DATA with CRLF


async def test_bare_user_names_are_kept_with_a_note_per_recipient(make_config, start_relay):
    relay = await start_relay(make_config())
    async with aiosmtplib.SMTP(hostname="127.0.0.1", port=port_of(relay)) as client:
        refused, reply = await client.sendmail(
            "trac@example.org", ["alice", "bob", "carol@example.org"], b"Subject: x\r\n\r\nx\r\n"
        )
    assert refused == {} and reply.startswith("2.0.0")
    meta = only_meta(relay)
    assert meta["recipients"] == ["alice", "bob", "carol@example.org"]
    notes = meta["relay_refusals"]
    assert [note["stage"] for note in notes] == ["RCPT", "RCPT"]
    assert notes[0]["reply"].startswith("550 5.1.3 <alice> is a user name")
    assert notes[1]["reply"].startswith("550 5.1.3 <bob> is a user name")
    assert "original_kept" not in meta  # the message itself was fine


async def test_mail_show_says_what_relay_mode_would_refuse(
    make_config, start_relay, tmp_path, capsysbinary
):
    relay = await start_relay(make_config())
    await asyncio.to_thread(send_with_smtplib, port_of(relay), ["bob"], python_idiom_message())
    queue_id = only_meta(relay)["id"]
    code = await asyncio.to_thread(
        main, ["mail", "show", "-c", str(tmp_path / "relay.yaml"), queue_id]
    )
    out = capsysbinary.readouterr().out.decode()
    assert code == 0
    assert "relay mode would refuse at RCPT: 550 5.1.3 <bob> is a user name" in out
    assert f"relay mode would refuse at DATA: {BARE_LF_REPLY}" in out
    args = ["mail", "show", "--raw", "-c", str(tmp_path / "relay.yaml"), queue_id]
    assert await asyncio.to_thread(main, args) == 0
    assert capsysbinary.readouterr().out == python_idiom_message() + b"\r\n"  # as sent


async def test_invalid_address_syntax_stays_refused_in_capture_mode(make_config, start_relay):
    relay = await start_relay(make_config())
    async with aiosmtplib.SMTP(hostname="127.0.0.1", port=port_of(relay)) as client:
        await client.mail("a@example.org")
        with pytest.raises(aiosmtplib.SMTPRecipientRefused) as refused:
            await client.rcpt("a..b@example.org")
    assert refused.value.code == 553


async def test_relay_mode_still_refuses_both(make_config, start_relay):
    relay = await start_relay(make_config(upstream={"host": "127.0.0.1", "port": 9, "tls": "none"}))
    with pytest.raises(smtplib.SMTPDataError) as refused:
        await asyncio.to_thread(
            send_with_smtplib, port_of(relay), ["dev@example.org"], python_idiom_message()
        )
    assert refused.value.smtp_code == 550
    async with aiosmtplib.SMTP(hostname="127.0.0.1", port=port_of(relay)) as client:
        await client.mail("a@example.org")
        with pytest.raises(aiosmtplib.SMTPRecipientRefused) as refused_rcpt:
            await client.rcpt("bob")
    assert refused_rcpt.value.code == 550
