"""Microsoft 365 after basic auth: the client-credentials grant (secret or certificate), the
device-code grant of ``notify-relay oauth``, and what the relay says about 5.7.30/5.7.139."""

from __future__ import annotations

import asyncio
import stat
from contextlib import ExitStack
from pathlib import Path

import pytest
import yaml
from aiosmtpd.smtp import AuthResult
from helpers import eventually, submit
from oauthserver import (
    APP_SCOPE,
    CLIENT_ID,
    CLIENT_SECRET,
    USER_CODE,
    OAuthUpstream,
    TokenEndpoint,
    private,
)
from oauthserver import app_certificate as certificate
from upstream import FakeUpstream

from relay.cli.main import main
from relay.deliver.oauth import poll_device_code, start_device_code
from relay.deliver.options import OAuthConfig
from relay.errors import ConfigError
from relay.queue.spool import QueueState
from relay.secret import Secret

MAILBOX = "trac@contoso.example"
TENANT = "contoso.example"
BASIC_AUTH_OFF = "550 5.7.30 Basic authentication is not supported for Client Submission"


def app_section(upstream, endpoint, **credentials):
    return {
        "host": "127.0.0.1",
        "port": upstream.port,
        "tls": "none",
        "allow_insecure_auth": True,
        "username": MAILBOX,
        "auth": "xoauth2",
        "oauth": {
            "provider": "microsoft",
            "tenant": TENANT,
            "grant": "client_credentials",
            "token_url": endpoint.url,  # the preset's scope, the local endpoint
            "client_id": CLIENT_ID,
            **{key: str(value) for key, value in credentials.items()},
        },
    }


async def test_client_credentials_with_a_secret_send_with_an_app_only_token(
    make_config, start_relay, tmp_path, caplog
):
    secret_file = private(tmp_path / "client-secret", CLIENT_SECRET.encode() + b"\n")
    with TokenEndpoint() as endpoint, OAuthUpstream(user=MAILBOX, valid={"access-1"}) as upstream:
        section = app_section(upstream, endpoint, client_secret_file=secret_file)
        relay = await start_relay(make_config(upstream=section))
        await submit(relay, ["bob@example.org"])
        (received,) = await eventually(lambda: upstream.messages)
    assert received.auth == MAILBOX
    (form,) = endpoint.forms
    assert (form["grant_type"], form["scope"]) == ("client_credentials", APP_SCOPE)
    assert form["client_secret"] == CLIENT_SECRET and "refresh_token" not in form
    assert CLIENT_SECRET not in caplog.text and "access-1" not in caplog.text


@pytest.fixture
async def certificate_relay(make_config, start_relay):
    """A relay whose app signs with ``cert_file``/``key_file`` while the token endpoint
    knows ``registered``; one message submitted."""
    with ExitStack() as stack:

        async def start(registered, cert_file, key_file):
            endpoint = stack.enter_context(TokenEndpoint(certificate=registered))
            upstream = stack.enter_context(OAuthUpstream(user=MAILBOX, valid={"access-1"}))
            section = app_section(
                upstream, endpoint, client_certificate_file=cert_file, client_key_file=key_file
            )
            relay = await start_relay(make_config(upstream=section))
            await submit(relay, ["bob@example.org"])
            return relay, endpoint, upstream

        yield start


async def test_client_credentials_with_a_certificate_send_a_signed_assertion(
    certificate_relay, tmp_path
):
    cert, cert_file, key_file = certificate(tmp_path)
    _, endpoint, upstream = await certificate_relay(cert, cert_file, key_file)
    await eventually(lambda: upstream.messages)
    (form,) = endpoint.forms
    assert "client_secret" not in form and form["client_assertion"].count(".") == 2


async def test_an_assertion_for_another_certificate_is_refused_and_holds(
    certificate_relay, tmp_path, caplog
):
    registered, _, _ = certificate(tmp_path, "registered")
    _, cert_file, key_file = certificate(tmp_path, "other")
    relay, _, upstream = await certificate_relay(registered, cert_file, key_file)
    spool = relay.manager.spool
    await eventually(lambda: spool.ids(QueueState.DEFERRED))
    assert "HOLDING ALL DELIVERY" in caplog.text and "invalid_client" in caplog.text
    assert not upstream.messages and not spool.ids(QueueState.FAILED)


def test_a_key_that_is_not_the_certificates_is_a_config_error(make_config, tmp_path):
    _, cert_file, _ = certificate(tmp_path, "a")
    _, _, key_file = certificate(tmp_path, "b")
    with TokenEndpoint() as endpoint, FakeUpstream() as upstream:
        section = app_section(
            upstream, endpoint, client_certificate_file=cert_file, client_key_file=key_file
        )
        with pytest.raises(ConfigError) as raised:
            make_config(upstream=section)
    assert "upstream.oauth.client_key_file" in str(raised.value)
    assert "not the key of client_certificate_file" in str(raised.value)


def test_device_code_polls_at_the_interval_and_slows_down_when_told():
    answers = ("authorization_pending", "slow_down", "authorization_pending")
    with TokenEndpoint(device_answers=answers) as endpoint:
        oauth = OAuthConfig(
            token_url=endpoint.url,
            device_code_url=endpoint.device_url,
            client_id=CLIENT_ID,
            refresh_token_file=Path("/unused"),  # never written: the test polls by hand
        )
        code = start_device_code(oauth, client_secret=CLIENT_SECRET)
        waits: list[float] = []
        _, refresh = poll_device_code(oauth, code, client_secret=CLIENT_SECRET, sleep=waits.append)
    assert code.user_code == USER_CODE and isinstance(code.device_code, Secret)
    assert waits == [5, 5, 10, 10]  # RFC 8628: five seconds more after slow_down
    assert refresh == endpoint.refresh_token


def test_oauth_device_code_stores_the_refresh_token(tmp_path, capsys, monkeypatch):
    secret_file = private(tmp_path / "client-secret", CLIENT_SECRET.encode() + b"\n")
    refresh_file = tmp_path / "refresh-token"
    with TokenEndpoint() as endpoint:
        config = tmp_path / "relay.yaml"
        section = {
            "host": "smtp.office365.com",
            "username": MAILBOX,
            "auth": "xoauth2",
            "oauth": {
                "provider": "microsoft",
                "tenant": TENANT,
                "token_url": endpoint.url,
                "device_code_url": endpoint.device_url,
                "client_id": CLIENT_ID,
                "client_secret_file": str(secret_file),
                "refresh_token_file": str(refresh_file),
            },
        }
        config.write_text(yaml.safe_dump({"upstream": section}))
        monkeypatch.setattr("relay.deliver.oauth.DEVICE_POLL_SLEEP", lambda seconds: None)
        assert main(["oauth", "-c", str(config), "--device-code"]) == 0
    printed = capsys.readouterr().out
    assert "open https://microsoft.com/devicelogin" in printed and USER_CODE in printed
    assert refresh_file.read_text() == f"{endpoint.refresh_token}\n"
    assert stat.S_IMODE(refresh_file.stat().st_mode) == 0o600
    assert CLIENT_SECRET not in printed and endpoint.refresh_token not in printed
    device = endpoint.forms[0]
    assert device["scope"] == "https://outlook.office.com/SMTP.Send offline_access"


class _BasicAuthOff(FakeUpstream):
    """Microsoft 365 after the change: any password login gets 550 5.7.30."""

    def _authenticate(self, server, session, envelope, mechanism, auth_data) -> AuthResult:
        return AuthResult(success=False, handled=False, message=BASIC_AUTH_OFF)


async def test_basic_auth_refusal_holds_the_queue_and_says_to_switch_to_oauth(
    make_config, start_relay, password_file, caplog, capsys, tmp_path
):
    with _BasicAuthOff(credentials=("x", "y")) as upstream:
        section = {
            "host": "127.0.0.1",
            "port": upstream.port,
            "tls": "none",
            "allow_insecure_auth": True,
            "username": MAILBOX,
            "password_file": str(password_file),
        }
        relay = await start_relay(make_config(upstream=section))
        await submit(relay, ["bob@example.org"])
        spool = relay.manager.spool
        await eventually(lambda: spool.ids(QueueState.DEFERRED))
        code = await asyncio.to_thread(main, ["check", "-c", str(tmp_path / "relay.yaml")])
    assert not spool.ids(QueueState.FAILED)  # held, not bounced
    assert "HOLDING ALL DELIVERY" in caplog.text
    assert "what to do: Microsoft 365 no longer accepts a password" in caplog.text
    out = capsys.readouterr().out
    assert code == 77 and "5.7.30" in out and "grant: client_credentials" in out


async def test_a_refused_app_token_gets_the_permissions_advice(make_config, tmp_path, capsys):
    secret_file = private(tmp_path / "client-secret", CLIENT_SECRET.encode() + b"\n")
    with TokenEndpoint() as endpoint, OAuthUpstream(user=MAILBOX, valid=set()) as upstream:
        make_config(upstream=app_section(upstream, endpoint, client_secret_file=secret_file))
        code = await asyncio.to_thread(main, ["check", "-c", str(tmp_path / "relay.yaml")])
    assert code == 77
    out = capsys.readouterr().out
    assert "SMTP.SendAsApp" in out and "app password" not in out
