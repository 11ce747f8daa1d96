"""Password logins cost one attempt: a refusal or a rate limit is never tried again at once.

aiosmtplib's own ``login`` tries every mechanism the server offers after any failure: a
wrong password became two failed logins per session (PLAIN, then LOGIN), and Gmail's
``454 4.7.0 Too many login attempts`` got an immediate second attempt.
"""

from __future__ import annotations

import asyncio
import itertools
import time

import pytest
from aiosmtpd.smtp import SMTP, AuthResult
from helpers import eventually, submit
from upstream import FakeUpstream, SinkHandler

from relay.queue.spool import QueueState

CREDENTIALS = ("trac", "s3cret-app-password")


class _BrokenCramHandler(SinkHandler):
    async def auth_CRAM__MD5(self, server: SMTP, args: list[str]) -> AuthResult:
        self.upstream.auth_attempts.append(("CRAM-MD5", True))
        message = "535 5.7.8 no clear-text passwords here"  # Cyrus SASL with hashed passwords
        return AuthResult(success=False, handled=False, message=message)


class BrokenCram(FakeUpstream):
    """Offers CRAM-MD5 (first in aiosmtplib's own order) but cannot check it: 535."""

    def _protocol(self) -> SMTP:
        return SMTP(_BrokenCramHandler(self), **self._options())


class _NoPlainHandler(SinkHandler):
    async def auth_PLAIN(self, server: SMTP, args: list[str]) -> AuthResult:
        self.upstream.auth_attempts.append(("PLAIN", True))
        return AuthResult(success=False, handled=False, message="504 5.5.4 not implemented")


class NoPlain(FakeUpstream):
    """Offers PLAIN but answers it with 504 (not implemented); LOGIN works."""

    def _protocol(self) -> SMTP:
        return SMTP(_NoPlainHandler(self), **self._options())


def section(upstream: FakeUpstream, password_file: object, ca_file: object) -> dict[str, object]:
    return {
        "host": "127.0.0.1",
        "port": upstream.port,
        "ca_file": ca_file,
        "username": CREDENTIALS[0],
        "password_file": password_file,
    }


async def test_a_wrong_password_is_tried_once_per_session(
    make_config, start_relay, server_context, ca_file, tmp_path, caplog
):
    wrong = tmp_path / "wrong"
    wrong.write_text("not-the-password\n")
    wrong.chmod(0o600)
    with FakeUpstream(tls="starttls", context=server_context, credentials=CREDENTIALS) as up:
        config = make_config(
            upstream=section(up, wrong, ca_file),
            queue={"path": "queue", "retry": {"min_backoff": 60}},  # the hold: no second session
        )
        relay = await start_relay(config)
        await submit(relay, ["bob@example.org"])
        await eventually(lambda: relay.manager.spool.ids(QueueState.DEFERRED))
        assert "HOLDING ALL DELIVERY" in caplog.text
        assert up.auth_attempts == [("trac", True)]  # PLAIN only; LOGIN is not tried after 535


@pytest.mark.parametrize(
    ("server", "attempts"),
    [
        # PLAIN comes before a CRAM-MD5 the server cannot check
        (BrokenCram, [("trac", True)]),
        # an offered mechanism the server does not implement (504) moves on to LOGIN
        (NoPlain, [("PLAIN", True), ("trac", True)]),
    ],
    ids=["plain-before-cram-md5", "unimplemented-moves-on"],
)
async def test_the_mechanism_order_and_when_to_move_on(
    make_config, start_relay, server_context, ca_file, password_file, server, attempts
):
    with server(tls="starttls", context=server_context, credentials=CREDENTIALS) as up:
        relay = await start_relay(make_config(upstream=section(up, password_file, ca_file)))
        await submit(relay, ["bob@example.org"])
        (received,) = await eventually(lambda: up.messages)
        assert received.auth == "trac" and up.auth_attempts == attempts


async def test_a_credentials_hold_costs_one_login_per_hold_and_says_when_it_ends(
    make_config, start_relay, server_context, ca_file, tmp_path, caplog
):
    wrong = tmp_path / "wrong"
    wrong.write_text("not-the-password\n")
    wrong.chmod(0o600)
    logins: list[float] = []
    with FakeUpstream(tls="starttls", context=server_context, credentials=CREDENTIALS) as up:
        check = up._authenticate

        def counted(*args):
            logins.append(time.monotonic())
            return check(*args)

        up._authenticate = counted
        retry = {"min_backoff": 0.5, "max_backoff": 30, "jitter": 0}  # the hold: 0.5 s
        config = make_config(
            upstream={**section(up, wrong, ca_file), "connections": 2},
            queue={"path": "queue", "retry": retry},
        )
        relay = await start_relay(config)
        for n in range(3):  # each message has its own back-off: none may log in on its own
            await submit(relay, [f"user{n}@example.org"])
            await asyncio.sleep(0.15)
        await asyncio.sleep(2.2)
        gaps = [round(b - a, 2) for a, b in itertools.pairwise(logins)]
        assert 4 <= len(logins) <= 6 and all(0.4 <= gap <= 0.8 for gap in gaps), gaps
        assert "next try in 0 s" not in caplog.text and "next try in 0.5 s" in caplog.text
        up.credentials = ("trac", "not-the-password")  # the provider takes it after all
        await eventually(lambda: len(up.messages) == 3, timeout=5)
        assert "credentials hold on 127.0.0.1:" in caplog.text and "ended" in caplog.text
        assert sum(message.recipients != [] for message in up.messages) == 3
