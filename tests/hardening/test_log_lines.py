"""What upstream and clients say reaches the log and the queue listing as one line each.

An upstream reply may span several lines (``550-...`` continuations) and carry control
characters; printed as it came, it splits a Postfix-style line in two and lets the upstream
start a line of its own choosing (log injection).
"""

from __future__ import annotations

import io

from helpers import free_port, port_of

from relay.log import logger, one_line, setup_logging
from relay.queue import listing

from .flow import queued, submit, wait_for

MESSAGE = b"From: trac@example.org\r\nTo: dev@example.org\r\nSubject: lines\r\n\r\nbody\r\n"
FAKE = "18E0A1B2C3D4E5F6A7: to=<boss@example.org>, status=sent (250 ok)"
#: A multi-line refusal whose last line looks like a log line of its own, and an escape code.
INJECTED = f"550-5.7.1 Message refused\r\n550 5.7.1 {FAKE}\x1b[2J"


def relay_lines(caplog) -> list[str]:
    return [record.getMessage() for record in caplog.records if record.name == "notify-relay"]


async def test_a_multi_line_upstream_reply_is_one_line_in_the_log_and_the_listing(
    relay_for, upstream, caplog
):
    upstream.data_reply = lambda envelope: INJECTED
    relay = await relay_for(upstream)
    await submit(port_of(relay), MESSAGE)
    await wait_for(lambda: "failed" in queued(relay))
    lines = relay_lines(caplog)
    assert [line for line in lines if not line.isprintable()] == []
    (bounced,) = [line for line in lines if "status=bounced" in line]
    assert bounced.endswith(f"(550 5.7.1 Message refused 5.7.1 {FAKE}\\x1b[2J)")
    table = listing.format_table(listing.read_entries(relay.manager.spool))
    assert all(line.isprintable() for line in table.splitlines())
    assert f"550 5.7.1 Message refused 5.7.1 {FAKE}\\x1b[2J" in table


def test_the_text_log_writes_one_physical_line_per_event(monkeypatch):
    stream = io.StringIO()
    monkeypatch.setattr("sys.stderr", stream)
    setup_logging(fmt="text")
    try:
        logger.warning("auth: %s failed to log in", "mallory\r\n2026-01-01 notify-relay[1]: fake")
        try:
            raise ValueError("boom")
        except ValueError:
            logger.exception("unexpected\nerror")
    finally:
        logger.handlers[:] = []
    first, second, *traceback = stream.getvalue().splitlines()
    assert first.endswith(": auth: mallory 2026-01-01 notify-relay[1]: fake failed to log in")
    assert second.endswith(": unexpected error") and traceback[-1] == "ValueError: boom"


def test_one_line_joins_continuations_and_escapes_control_characters():
    assert one_line("5.7.8 a\r\n5.7.8 b\n") == "5.7.8 a 5.7.8 b"
    assert one_line("x\x1b[31my\x00\u2028z\tw") == "x\\x1b[31my\\x00 z\\x09w"
    assert one_line("550 ok \u202egnp.exe") == "550 ok \\u202egnp.exe"


async def test_a_connection_failure_is_logged_under_the_queue_id(make_config, start_relay, caplog):
    upstream = {"host": "127.0.0.1", "port": free_port(), "tls": "none"}
    relay = await start_relay(make_config(upstream=upstream, web={"enabled": False}))
    queue_id = (await submit(port_of(relay), MESSAGE)).split()[-1]
    await wait_for(lambda: "deferred" in queued(relay))
    failures = [line for line in relay_lines(caplog) if "connect to 127.0.0.1" in line]
    assert failures and all(line.startswith(f"{queue_id}: ") for line in failures)
