"""``serve --log-format json``: a line's fields are the data its call passed, never read
back from the text, so a value holding ``, status=`` or ``=`` stays one field; the text
(the message) is the Postfix line as before."""

from __future__ import annotations

import asyncio
import re
from typing import Any

import aiosmtplib
import pytest
from helpers import MESSAGE, eventually, free_port, port_of
from upstream import FakeUpstream

from relay.queue.actions import Action
from relay.queue.control import send
from relay.queue.spool import QueueState, Spool

#: Keys every JSON line has; the rest are the call's fields.
BASE = {"time", "level", "pid", "message"}
ODD = '"a, status=sent"@example.org'


def data(event: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in event.items() if key not in BASE}


def only(events: list[dict[str, Any]], pattern: str) -> dict[str, Any]:
    """The one event whose message matches ``pattern`` (a regular expression)."""
    (found,) = [event for event in events if re.search(pattern, event["message"])]
    return found


def relay_mode(upstream: FakeUpstream, **retry: float) -> dict[str, Any]:
    upstream_section = {"host": "127.0.0.1", "port": upstream.port, "tls": "none"}
    queue = {"path": "queue", "retry": {"min_backoff": 0.2, "max_backoff": 1, "jitter": 0, **retry}}
    return {"upstream": upstream_section, "queue": queue, "web": {"enabled": False}}


async def test_receive_capture_start_and_reload_lines_carry_their_data(
    make_config, start_relay, json_log, tmp_path
):
    store = tmp_path / "mail, status=sent"
    config = make_config(capture={"path": str(store)}, limits={"max_recipients": 1})
    relay = await start_relay(config)
    async with aiosmtplib.SMTP(hostname="127.0.0.1", port=port_of(relay)) as client:
        host, port = client.transport.get_extra_info("sockname")[:2]
        await client.mail("trac@example.org")
        await client.rcpt("bob@example.org")
        with pytest.raises(aiosmtplib.SMTPRecipientRefused):
            await client.rcpt(ODD)
        queue_id = (await client.data(MESSAGE)).message.split()[-1]
    relay.reload(config)
    events, peer = json_log(), f"[{host}]:{port}"

    assert data(only(events, "^smtp: listening on")) == {"listen": relay.bound[0]}
    assert data(only(events, "^capture mode:")) == {"path": str(store)}
    assert data(only(events, "^web: page and API on")) == {"url": relay.web.url}
    refused = "452 4.5.3 Too many recipients (at most 1 per message)"
    rejection = only(events, "^reject: RCPT")
    assert rejection["message"] == (
        f"reject: RCPT from {peer}: {refused}; from=<trac@example.org> to=<{ODD}>"
    )
    assert data(rejection) == {
        "client": peer,
        "command": "RCPT",
        "reason": "recipients_limit",
        "reply": refused,
        "from": "trac@example.org",
        "to": ODD,
    }
    receipt = only(events, f"^{queue_id}: from=")
    assert data(receipt) == {
        "queue_id": queue_id,
        "from": "trac@example.org",
        "size": re.search(r"size=(\d+)", receipt["message"])[1],
        "nrcpt": "1",
        "client": peer,
    }
    captured = only(events, f"^{queue_id}: captured in ")
    assert captured["message"] == f"{queue_id}: captured in {store}"
    assert data(captured) == {"queue_id": queue_id, "path": str(store)}
    reload = only(events, "^reload: configuration from")
    assert data(reload) == {"path": str(config.source)}


async def test_a_refused_connection_names_the_client(make_config, start_relay, json_log):
    relay = await start_relay(make_config(allowed_networks=["10.0.0.0/8"]))
    reader, writer = await asyncio.open_connection("127.0.0.1", port_of(relay))
    host, port = writer.get_extra_info("sockname")[:2]
    assert (await reader.readline()).startswith(b"554 5.7.1")
    writer.close()
    refusal = only(json_log(), "^reject: connect from")
    assert refusal["message"] == f"reject: connect from ('{host}', {port}): not in allowed_networks"
    assert data(refusal) == {"client": f"[{host}]:{port}", "reason": "not in allowed_networks"}


async def test_delivery_and_operator_lines_carry_their_data(make_config, start_relay, json_log):
    busy = "451 4.3.0 busy, status=sent (not really)"
    with FakeUpstream(rcpt_reply=lambda rcpt: busy if rcpt.startswith("x=") else None) as upstream:
        relay = await start_relay(make_config(**relay_mode(upstream)))
        async with aiosmtplib.SMTP(hostname="127.0.0.1", port=port_of(relay)) as client:
            reply = await client.sendmail(
                "trac@example.org", ["bob@example.org", "x=y@example.org"], MESSAGE
            )
        queue_id = reply[1].split()[-1]
        await eventually(lambda: relay.manager.spool.ids(QueueState.DEFERRED))
        report = await asyncio.to_thread(send, relay.manager.spool.root, Action.HOLD, [queue_id])
        assert report is not None and report.done
    events = json_log()
    held = only(events, "operator request")
    assert held["message"] == f"queue: hold {queue_id} (operator request)"
    assert data(held) == {"action": "hold", "queue_id": queue_id}
    where = f"127.0.0.1[127.0.0.1]:{upstream.port}"
    sent, deferred = only(events, r"status=sent \(250"), only(events, "status=deferred")
    assert sent["level"] == "info" and deferred["level"] == "warning"
    assert re.fullmatch(r"\d+\.\d\d", deferred["delay"])
    assert deferred["message"] == (
        f"{queue_id}: to=<x=y@example.org>, relay={where}, delay={deferred['delay']}, "
        f"attempts=1, dsn=4.3.0, status=deferred ({busy})"
    )
    assert data(deferred) == {
        "queue_id": queue_id,
        "to": "x=y@example.org",
        "relay": where,
        "delay": deferred["delay"],
        "attempts": "1",
        "dsn": "4.3.0",
        "status": "deferred",
        "reply": busy,
    }
    assert (sent["to"], sent["relay"], sent["status"]) == ("bob@example.org", where, "sent")


async def test_an_expired_message_bounces_with_its_data(make_config, start_relay, json_log):
    with FakeUpstream(rcpt_reply=lambda rcpt: "451 4.3.0 busy") as upstream:
        relay = await start_relay(make_config(**relay_mode(upstream, lifetime=0.001)))
        async with aiosmtplib.SMTP(hostname="127.0.0.1", port=port_of(relay)) as client:
            await client.sendmail("trac@example.org", ["bob@example.org"], MESSAGE)
        await eventually(lambda: relay.manager.spool.ids(QueueState.FAILED))
    bounced = only(json_log(), "status=bounced")
    assert (bounced["status"], bounced["dsn"], bounced["to"]) == (
        "bounced",
        "4.3.0",
        "bob@example.org",
    )
    assert bounced["reply"] == "451 4.3.0 busy (gave up: queued too long)"


async def test_a_failed_session_and_a_corrupt_file_carry_their_data(
    make_config, start_relay, json_log, tmp_path
):
    """The reply of a failed connection is a field, not text to be parsed (it may hold
    ``=``); a corrupt queue file's line says why and where it went."""
    spool = Spool(tmp_path / "queue")
    spool.create()
    corrupt = "18E0A1B2C3D4E5F6A7"
    (spool.root / "incoming" / corrupt).write_bytes(b"status=sent, to=<x>")
    config = make_config(upstream={"host": "127.0.0.1", "port": free_port(), "tls": "none"})
    relay = await start_relay(config)
    async with aiosmtplib.SMTP(hostname="127.0.0.1", port=port_of(relay)) as client:
        reply = await client.sendmail("trac@example.org", ["bob@example.org"], MESSAGE)
    queue_id = reply[1].split()[-1]
    await eventually(lambda: queue_id in relay.manager.spool.ids(QueueState.DEFERRED))
    events = json_log()
    failure = only(events, f"^{queue_id}: (?!to=).*connect to 127.0.0.1")
    assert data(failure) == {"queue_id": queue_id, "reply": failure["message"].split(": ", 1)[1]}
    moved = only(events, f"^{corrupt}: corrupt queue file")
    assert set(data(moved)) == {"queue_id", "reason", "moved_to"}
    assert (moved["queue_id"], moved["moved_to"]) == (corrupt, "corrupt")
    assert (
        moved["message"] == f"{corrupt}: corrupt queue file ({moved['reason']}); moved to corrupt/"
    )


async def test_a_failed_listener_login_names_the_user_never_the_password(
    make_config, start_relay, listen_security, listener_cert, client_context, json_log
):
    wrong = "wrong-pass-9Z"
    sections = listen_security(users={"trac": "listener-pass-7Q"}, failure_delay=0)
    relay = await start_relay(make_config(**sections))
    async with aiosmtplib.SMTP(
        hostname="127.0.0.1", port=port_of(relay), tls_context=client_context, start_tls=True
    ) as client:
        host, port = client.transport.get_extra_info("sockname")[:2]
        await client.ehlo()
        with pytest.raises(aiosmtplib.SMTPAuthenticationError):
            await client.auth_plain("trac", wrong)
    events = json_log()
    assert data(only(events, "^smtp: TCP listeners offer STARTTLS")) == {
        "tls": "required",
        "certificate": str(listener_cert[0]),
    }
    failed = only(events, "^auth: ")
    assert data(failed) == {
        "client": f"[{host}]:{port}",
        "mechanism": "PLAIN",
        "user": '"trac"',
        "failures": "1",
        "limit": failed["message"].rsplit(" ", 1)[1].rstrip(")"),
    }
    assert all(wrong not in str(event) for event in events)
