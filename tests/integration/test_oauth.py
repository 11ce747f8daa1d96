"""OAuth2 logins: tokens from a local token endpoint, checked by an upstream that wants them."""

from __future__ import annotations

import asyncio
import base64
import io
import urllib.parse
from contextlib import ExitStack

import aiosmtplib
import pytest
import yaml
from hardening.processes import RelayProcess, write_config
from helpers import MESSAGE, eventually, free_port, submit
from oauthserver import (
    CLIENT_ID,
    CLIENT_SECRET,
    CODE,
    REFRESH_TOKEN,
    OAuthUpstream,
    TokenEndpoint,
)

from relay.cli.main import main
from relay.queue.spool import QueueState

USER = "trac@example.org"


@pytest.fixture
def oauth_files(tmp_path):
    """The client secret and refresh token files, mode 0600."""
    paths = {}
    for name, text in (
        ("client_secret_file", CLIENT_SECRET),
        ("refresh_token_file", REFRESH_TOKEN),
    ):
        path = paths[name] = tmp_path / name
        path.write_text(text + "\n")
        path.chmod(0o600)
    return paths


@pytest.fixture
async def oauth_relay(make_config, start_relay, server_context, ca_file, oauth_files):
    """Start a token endpoint, an upstream taking the ``valid`` tokens, and a relay using both."""
    with ExitStack() as stack:

        async def start(
            valid: set[str],
            *,
            auth: str = "xoauth2",
            rotate: bool = False,
            expires_in: int = 3600,
            provider: str | None = None,
            **extra: object,
        ):
            endpoint = stack.enter_context(TokenEndpoint(rotate=rotate, expires_in=expires_in))
            upstream = stack.enter_context(
                OAuthUpstream(user=USER, valid=valid, tls="starttls", context=server_context)
            )
            oauth = {"token_url": endpoint.url, "client_id": CLIENT_ID, **oauth_files}
            if provider is not None:  # the preset's scope; token_url still points here
                oauth["provider"] = provider
            section = {
                "host": "127.0.0.1",
                "port": upstream.port,
                "ca_file": ca_file,
                "username": USER,
                "auth": auth,
                "oauth": oauth,
                **extra,
            }
            relay = await start_relay(make_config(upstream=section))
            await submit(relay, ["bob@example.org"])
            return relay, endpoint, upstream

        yield start


def no_secret_in(text: str, endpoint: TokenEndpoint) -> bool:
    return not any(s in text for s in (CLIENT_SECRET, REFRESH_TOKEN, *endpoint.issued))


def bearer_tokens(upstream: OAuthUpstream) -> list[str]:
    return [text.split("Bearer ")[1].strip("\x01") for _, text in upstream.auth_strings]


async def test_xoauth2_with_a_token_from_the_refresh_token(oauth_relay, caplog):
    relay, endpoint, upstream = await oauth_relay({"access-1"})
    (received,) = await eventually(lambda: upstream.messages)
    assert received.auth == USER and received.tls and received.content == MESSAGE
    assert upstream.auth_strings == [("XOAUTH2", f"user={USER}\x01auth=Bearer access-1\x01\x01")]
    assert endpoint.forms == [
        {
            "grant_type": "refresh_token",
            "refresh_token": REFRESH_TOKEN,
            "client_id": CLIENT_ID,
            "client_secret": CLIENT_SECRET,
        }
    ]
    await submit(relay, ["carol@example.org"])
    await eventually(lambda: len(upstream.messages) == 2)
    assert len(endpoint.forms) == 1  # the token is cached until shortly before it expires
    assert no_secret_in(caplog.text, endpoint)


async def test_oauthbearer_names_the_user_host_and_port(oauth_relay):
    _, _, upstream = await oauth_relay({"access-1"}, auth="oauthbearer")
    await eventually(lambda: upstream.messages)
    pairs = f"host=127.0.0.1\x01port={upstream.port}\x01auth=Bearer access-1\x01\x01"
    assert upstream.auth_strings == [("OAUTHBEARER", f"n,a={USER},\x01{pairs}")]


@pytest.mark.parametrize("auth", ["xoauth2", "oauthbearer"])
async def test_a_refused_token_is_refreshed_once(oauth_relay, caplog, auth):
    _, endpoint, upstream = await oauth_relay({"access-2"}, auth=auth)
    await eventually(lambda: upstream.messages)
    assert bearer_tokens(upstream) == ["access-1", "access-2"] and len(endpoint.forms) == 2
    assert "refused the access token; once more with a fresh one" in caplog.text
    assert no_secret_in(caplog.text, endpoint)


async def test_a_token_refused_twice_holds_the_upstream_and_bounces_nothing(oauth_relay, caplog):
    relay, endpoint, upstream = await oauth_relay(set())
    spool = relay.manager.spool
    await eventually(lambda: spool.ids(QueueState.DEFERRED))
    assert "HOLDING ALL DELIVERY" in caplog.text
    assert bearer_tokens(upstream) == ["access-1", "access-2"]  # once more, no more
    assert not spool.ids(QueueState.FAILED) and upstream.messages == []
    # each time the hold (0.2 s here) ends, one login with a new token: a token the
    # upstream refused is never offered again, and a new one is not "refreshed" at once
    await eventually(lambda: len(upstream.auth_strings) >= 4)
    assert bearer_tokens(upstream)[:4] == ["access-1", "access-2", "access-3", "access-4"]
    assert not spool.ids(QueueState.FAILED)
    assert no_secret_in(caplog.text, endpoint)


async def test_a_token_is_refreshed_shortly_before_it_expires(oauth_relay):
    # idle_time 0: the second message logs in again (a kept session needs no new token)
    relay, endpoint, upstream = await oauth_relay(
        {"access-1", "access-2"}, expires_in=2, idle_time=0
    )
    await eventually(lambda: upstream.messages)
    await asyncio.sleep(1.1)  # a 2 s token is used for half its life
    await submit(relay, ["carol@example.org"])
    await eventually(lambda: len(upstream.messages) == 2)
    assert bearer_tokens(upstream) == ["access-1", "access-2"]  # no refusal in between
    assert len(endpoint.forms) == 2


async def test_the_log_file_of_a_running_relay_holds_no_secret(
    tmp_path, oauth_files, server_context, ca_file
):
    """``notify-relay serve`` as a process, through a refusal, a refresh and a rotation."""
    with (
        TokenEndpoint(rotate=True) as endpoint,
        OAuthUpstream(
            user=USER, valid={"access-2"}, tls="starttls", context=server_context
        ) as upstream,
    ):
        port, log = free_port(), tmp_path / "serve.log"
        oauth = {"token_url": endpoint.url, "client_id": CLIENT_ID}
        oauth.update({key: str(path) for key, path in oauth_files.items()})
        section = {"host": "127.0.0.1", "port": upstream.port, "ca_file": str(ca_file)}
        section.update(username=USER, auth="xoauth2", oauth=oauth)
        config = write_config(
            tmp_path / "relay.yaml", listen=[f"127.0.0.1:{port}"], upstream=section
        )
        process = RelayProcess(config, port, log)
        process.start()
        try:
            async with aiosmtplib.SMTP(hostname="127.0.0.1", port=port) as client:
                await client.sendmail("trac@example.org", ["bob@example.org"], MESSAGE)
            await eventually(lambda: "status=sent" in log.read_text())
        finally:
            process.stop()
    text = log.read_text()
    assert "refused the access token" in text and "stored the rotated refresh token" in text
    sent = {form[key] for form in endpoint.forms for key in ("refresh_token", "client_secret")}
    auth = {base64.b64encode(line.encode()).decode() for _, line in upstream.auth_strings}
    secrets = sent | auth | {*endpoint.issued, endpoint.refresh_token}
    assert len(secrets) == 8  # 2 refresh tokens sent, 1 rotated in, client secret, 2 tokens twice
    assert [secret for secret in secrets if secret in text] == []


@pytest.mark.parametrize(
    ("provider", "scope"),
    [("google", None), ("microsoft", "https://outlook.office.com/SMTP.Send offline_access")],
)
async def test_the_provider_preset_decides_the_scope_of_a_refresh(oauth_relay, provider, scope):
    _, endpoint, upstream = await oauth_relay({"access-1"}, provider=provider)
    await eventually(lambda: upstream.messages)
    (form,) = endpoint.forms
    assert form.get("scope") == scope and form["grant_type"] == "refresh_token"


async def test_a_revoked_refresh_token_holds_the_upstream(oauth_relay, oauth_files, caplog):
    oauth_files["refresh_token_file"].write_text("revoked-long-ago\n")
    relay, _, upstream = await oauth_relay({"access-1"})
    await eventually(lambda: relay.manager.spool.ids(QueueState.DEFERRED))
    assert "HOLDING ALL DELIVERY" in caplog.text and "invalid_grant" in caplog.text
    assert "notify-relay oauth" in caplog.text and "revoked-long-ago" not in caplog.text
    assert upstream.auth_strings == []  # no AUTH without a token


async def test_a_rotated_refresh_token_is_stored_with_mode_0600(oauth_relay, oauth_files):
    _, endpoint, upstream = await oauth_relay({"access-1"}, rotate=True)
    await eventually(lambda: upstream.messages)
    path = oauth_files["refresh_token_file"]
    assert path.read_text() == f"{endpoint.refresh_token}\n" != f"{REFRESH_TOKEN}\n"
    assert path.stat().st_mode & 0o777 == 0o600


async def test_token_command_prints_the_access_token(
    make_config, start_relay, server_context, ca_file, tmp_path
):
    script = tmp_path / "token.sh"
    script.write_text("#!/bin/sh\necho from-a-command\n")
    script.chmod(0o700)
    with OAuthUpstream(
        user=USER, valid={"from-a-command"}, tls="starttls", context=server_context
    ) as upstream:
        section = {
            "host": "127.0.0.1",
            "port": upstream.port,
            "ca_file": ca_file,
            "username": USER,
            "auth": "xoauth2",
            "oauth": {"token_command": str(script)},
        }
        relay = await start_relay(make_config(upstream=section))
        await submit(relay, ["bob@example.org"])
        (received,) = await eventually(lambda: upstream.messages)
        assert received.auth == USER


class Paste:
    """stdin for ``notify-relay oauth``: reads the consent URL it printed, pastes the redirect."""

    def __init__(self, capsys, endpoint: TokenEndpoint) -> None:
        self.capsys, self.endpoint, self.printed = capsys, endpoint, ""

    def readline(self) -> str:
        self.printed = self.capsys.readouterr().out
        url = next(word for word in self.printed.split() if word.startswith("http://127.0.0.1"))
        query = urllib.parse.parse_qs(urllib.parse.urlsplit(url).query)
        self.query = {key: values[0] for key, values in query.items()}
        self.endpoint.challenge = self.query["code_challenge"]
        return f"http://localhost/?state={self.query['state']}&code={CODE}&scope=mail\n"


def test_oauth_verb_stores_the_refresh_token_with_mode_0600(
    tmp_path, oauth_files, capsys, monkeypatch, caplog
):
    refresh = oauth_files["refresh_token_file"]
    refresh.unlink()  # the first run: no refresh token yet
    with TokenEndpoint() as endpoint:
        config = tmp_path / "relay.yaml"
        section = {
            "host": "smtp.example.org",
            "username": USER,
            "auth": "xoauth2",
            "oauth": {
                "token_url": endpoint.url,
                "consent_url": "http://127.0.0.1:9/authorize",
                "client_id": CLIENT_ID,
                **{key: str(path) for key, path in oauth_files.items()},
            },
        }
        config.write_text(yaml.safe_dump({"upstream": section}))
        paste = Paste(capsys, endpoint)
        monkeypatch.setattr("sys.stdin", paste)
        assert main(["oauth", "--config", str(config)]) == 0
    assert paste.query["client_id"] == CLIENT_ID and paste.query["login_hint"] == USER
    assert paste.query["code_challenge_method"] == "S256"
    (form,) = endpoint.forms
    assert form["grant_type"] == "authorization_code" and form["code"] == CODE
    assert form["redirect_uri"] == "http://localhost" and form["client_secret"] == CLIENT_SECRET
    assert refresh.read_text() == f"{endpoint.refresh_token}\n"
    assert refresh.stat().st_mode & 0o777 == 0o600
    printed = paste.printed + capsys.readouterr().out
    assert f"Stored the refresh token in {refresh}" in printed
    assert no_secret_in(printed + caplog.text, endpoint)


def test_oauth_verb_refuses_a_redirect_from_another_run(tmp_path, oauth_files, capsys, monkeypatch):
    with TokenEndpoint() as endpoint:
        config = tmp_path / "relay.yaml"
        oauth = {"provider": "google", "token_url": endpoint.url, "client_id": CLIENT_ID}
        oauth.update({key: str(path) for key, path in oauth_files.items()})
        config.write_text(
            yaml.safe_dump(
                {
                    "upstream": {
                        "host": "smtp.gmail.com",
                        "username": USER,
                        "auth": "xoauth2",
                        "oauth": oauth,
                    }
                }
            )
        )
        monkeypatch.setattr("sys.stdin", io.StringIO(f"http://localhost/?state=old&code={CODE}\n"))
        assert main(["oauth", "-c", str(config)]) == 1
    out, err = capsys.readouterr()
    assert "https://accounts.google.com/o/oauth2/v2/auth?" in out
    assert "state in the URL does not match" in err and endpoint.forms == []
    assert oauth_files["refresh_token_file"].read_text() == f"{REFRESH_TOKEN}\n"


def test_check_verb_logs_in_with_a_token(tmp_path, oauth_files, server_context, ca_file, capsys):
    with (
        TokenEndpoint() as endpoint,
        OAuthUpstream(
            user=USER, valid={"access-1"}, tls="starttls", context=server_context
        ) as upstream,
    ):
        config = tmp_path / "relay.yaml"
        oauth = {"token_url": endpoint.url, "client_id": CLIENT_ID}
        oauth.update({key: str(path) for key, path in oauth_files.items()})
        section = {"host": "127.0.0.1", "port": upstream.port, "ca_file": str(ca_file)}
        section.update(username=USER, auth="xoauth2", oauth=oauth)
        config.write_text(yaml.safe_dump({"upstream": section}))
        assert main(["check", "-c", str(config)]) == 0
    out = capsys.readouterr().out
    assert f"{USER}: XOAUTH2 accepted" in out and no_secret_in(out, endpoint)
