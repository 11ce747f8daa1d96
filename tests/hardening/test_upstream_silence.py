"""An upstream that stops answering: the log names the step that timed out, not "connect"."""

from __future__ import annotations

import pytest
from helpers import port_of

from .flow import submit, wait_for
from .misbehave import RawUpstream, silent_at


@pytest.mark.parametrize(
    ("verb", "logged"),
    [
        ("greeting", "greeting from {relay}: timed out"),
        ("EHLO", "EHLO with {relay}: timed out"),
        ("STARTTLS", "TLS with {relay} failed in the STARTTLS handshake: timed out"),
        ("AUTH", "AUTH with {relay}: timed out"),
        ("MAIL", "MAIL with {relay}: timed out"),
        ("RCPT", "RCPT with {relay}: timed out"),
        ("DATA", "DATA with {relay}: timed out"),
    ],
)
async def test_the_log_names_the_step_the_upstream_did_not_answer(
    make_config, start_relay, password_file, caplog, verb, logged
):
    with RawUpstream(silent_at(verb)) as up:
        upstream = {
            "host": "127.0.0.1",
            "port": up.port,
            "tls": "starttls" if verb == "STARTTLS" else "none",
            "timeout": 1,
            "data_timeout": 1,
        }
        login = {"username": "relay", "password_file": password_file, "allow_insecure_auth": True}
        relay = await start_relay(
            make_config(upstream={**upstream, **login, "connections": 1}, web={"enabled": False})
        )
        await submit(port_of(relay), b"Subject: x\r\n\r\nhi\r\n")
        await wait_for(lambda: "status=deferred" in caplog.text)
    relay_name = f"127.0.0.1{'' if verb == 'greeting' else '[127.0.0.1]'}:{up.port}"
    assert logged.format(relay=relay_name) in caplog.text
    assert f"connect to {relay_name}" not in caplog.text
