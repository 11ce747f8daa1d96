"""``notify-relay check`` against real test upstreams that work and that fail in known ways."""

from __future__ import annotations

import ssl

import pytest
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
