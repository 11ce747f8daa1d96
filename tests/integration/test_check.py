"""``notify-relay check`` against real test upstreams that work and that fail in known ways."""

from __future__ import annotations

import re
import ssl

import pytest
from hardening.misbehave import RawUpstream, silent_at
from helpers import free_port
from upstream import FakeUpstream

from relay.cli.main import main

CREDENTIALS = ("relay@example.org", "s3cret-app-password")


@pytest.fixture(scope="module")
def wrong_name_context(ca) -> ssl.SSLContext:
    """A certificate from the trusted CA, but for another host name."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("wrong.example").configure_cert(context)
    return context


@pytest.fixture
def check(make_config, tmp_path, ca_file, password_file, capsys):
    """Run ``notify-relay check`` against ``upstream`` with ``tls``; return (code, output)."""

    def run(upstream: FakeUpstream, tls: str, *extra: str) -> tuple[int, str]:
        make_config(
            upstream={
                "host": "127.0.0.1",
                "port": upstream.port,
                "tls": tls,
                "username": CREDENTIALS[0],
                "password_file": password_file,
                "ca_file": ca_file,
            }
        )
        code = main(["check", "--config", str(tmp_path / "relay.yaml"), "--timeout", "2", *extra])
        return code, capsys.readouterr().out

    return run


def test_a_working_upstream_shows_every_step_and_takes_a_test_message(check, server_context):
    with FakeUpstream(tls="starttls", context=server_context, credentials=CREDENTIALS) as up:
        code, out = check(up, "starttls", "--send-test", "bob@example.org")
    assert code == 0, out
    steps = [line.split()[1] for line in out.splitlines() if line.startswith("  ok")]
    expected = ["resolve", "connect", "greeting", "tls", "certificate", "auth", "login", "send"]
    assert steps == expected
    assert "expires 3000-01-01" in out and "issuer organizationName=trustme" in out
    assert "offered: LOGIN, PLAIN" in out
    assert f"login        {CREDENTIALS[0]}: 235" in out
    (message,) = up.messages
    assert message.recipients == ["bob@example.org"] and message.tls
    assert b"Subject: notify-relay check: test message" in message.content
    assert CREDENTIALS[1] not in out


def test_no_starttls_offered(check):
    with FakeUpstream(tls="none") as up:
        code, out = check(up, "starttls")
    assert code == 69
    assert f"FAIL  starttls     127.0.0.1:{up.port} offers no STARTTLS" in out
    assert "what to do: " in out and "does not offer STARTTLS" in out
    assert up.auth_attempts == []


def test_bad_certificate_names_the_host_and_the_mismatch(check, wrong_name_context):
    with FakeUpstream(tls="starttls", context=wrong_name_context, credentials=CREDENTIALS) as up:
        code, out = check(up, "starttls")
    assert code == 69
    assert "certificate is not valid for '127.0.0.1'" in out
    assert "the certificate is for wrong.example" in out
    assert "what to do: the certificate does not name 127.0.0.1" in out
    assert up.auth_attempts == []


def test_rejected_password_says_use_an_app_password(check, server_context):
    wrong = (CREDENTIALS[0], "the-account-password")
    with FakeUpstream(tls="starttls", context=server_context, credentials=wrong) as up:
        code, out = check(up, "starttls")
    assert code == 77
    assert "FAIL  login        535 5.7.8" in out
    assert "app password" in out


@pytest.mark.parametrize(
    ("speaks", "configured", "advice"),
    [
        (
            "implicit",
            "starttls",
            "the other TLS mode, implicit TLS (SMTPS): set upstream.tls: implicit",
        ),
        ("starttls", "implicit", "the other TLS mode, STARTTLS: set upstream.tls: starttls"),
    ],
)
def test_a_port_speaking_the_other_tls_mode(check, server_context, speaks, configured, advice):
    with FakeUpstream(tls=speaks, context=server_context, credentials=CREDENTIALS) as up:
        code, out = check(up, configured)
    assert code == 69
    assert "FAIL  greeting" in out
    assert f"what to do: port {up.port} speaks {advice}" in out
    assert up.auth_attempts == []


def test_capture_mode_has_nothing_to_check(make_config, tmp_path, capsys):
    make_config()
    assert main(["check", "--config", str(tmp_path / "relay.yaml")]) == 78
    assert "no upstream: section" in capsys.readouterr().err


def test_mx_mode_says_there_is_no_one_upstream_to_check(make_config, tmp_path, capsys):
    make_config(upstream="mx")
    code = main(["check", "--config", str(tmp_path / "relay.yaml")])
    assert code == 64
    assert "no one upstream to check" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("verb", "step", "failure", "exit_code"),
    [
        ("greeting", "greeting", "no SMTP greeting: timed out", 69),
        ("EHLO", "ehlo", "no reply to EHLO: timed out", 69),
        ("STARTTLS", "starttls", "no reply to STARTTLS: timed out", 69),
        ("AUTH", "login", "no reply to AUTH: timed out", 77),
        ("MAIL", "send", "no reply to MAIL: timed out", 69),
        ("RCPT", "send", "no reply to RCPT: timed out", 69),
        ("DATA", "send", "no reply to DATA: timed out", 69),
    ],
)
def test_an_upstream_that_stops_answering_fails_the_step_it_stopped_at(
    make_config, tmp_path, password_file, capsys, verb, step, failure, exit_code
):
    with RawUpstream(silent_at(verb)) as up:
        tls = "starttls" if verb == "STARTTLS" else "none"
        upstream = {"host": "127.0.0.1", "port": up.port, "tls": tls}
        login = {"username": "relay", "password_file": password_file, "allow_insecure_auth": True}
        make_config(upstream={**upstream, **login})
        config = str(tmp_path / "relay.yaml")
        code = main(["check", "-c", config, "--timeout", "0.5", "--send-test", "bob@x.org"])
    out = capsys.readouterr().out
    assert re.search(rf"^  FAIL  {step} +{failure}", out, re.MULTILINE), out
    assert code == exit_code


def test_a_refused_connection_says_nothing_listens_there(make_config, tmp_path, capsys):
    port = free_port()
    make_config(upstream={"host": "127.0.0.1", "port": port, "tls": "starttls"})
    assert main(["check", "-c", str(tmp_path / "relay.yaml")]) == 69
    out = capsys.readouterr().out
    assert f"FAIL  connect      127.0.0.1:{port}: connection refused" in out
    assert f"what to do: nothing listens on 127.0.0.1:{port}" in out
    assert "firewall" not in out
