"""STARTTLS and AUTH on the relay's own listener (``listen_tls``, ``listen_auth``), driven by
smtplib as Trac drives it, and the config errors that keep a wrong setup from starting."""

from __future__ import annotations

import asyncio
import mailbox
import smtplib
import ssl
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiosmtplib
import pytest
from helpers import MESSAGE, port_of

from relay.config import load_config
from relay.credentials import read_credentials
from relay.errors import ConfigError
from relay.receive.users import check_login, parse_users

USER, PASSWORD = "trac", "listener-pass-7Q"


def captured(path: Path) -> list[bytes]:
    """The messages in the capture Maildir at ``path``."""
    if not (path / "new").exists():
        return []
    box = mailbox.Maildir(path, factory=None, create=False)
    return [box.get_bytes(key) for key in box.iterkeys()]


async def smtplib_session(port: int, steps: Callable[[smtplib.SMTP], Any]) -> Any:
    """Run ``steps(client)`` on an smtplib connection to the relay, in a thread (smtplib
    blocks, the relay runs on this event loop)."""

    def run() -> Any:
        with smtplib.SMTP("127.0.0.1", port, timeout=10) as client:
            return steps(client)

    return await asyncio.to_thread(run)


@pytest.mark.parametrize("mechanism", ["PLAIN", "LOGIN"])
async def test_starttls_and_auth_then_the_message_is_captured(
    mechanism, make_config, start_relay, listen_security, client_context, tmp_path, caplog
):
    relay = await start_relay(make_config(**listen_security(users={USER: PASSWORD})))

    def steps(client: smtplib.SMTP) -> str:
        client.starttls(context=client_context)
        client.user, client.password = USER, PASSWORD
        client.ehlo()
        code, _ = client.auth(mechanism, getattr(client, f"auth_{mechanism.lower()}"))
        assert code == 235
        client.sendmail("trac@example.org", ["bob@example.org"], MESSAGE)
        return client.sock.version()

    version = await smtplib_session(port_of(relay), steps)
    assert version in ("TLSv1.2", "TLSv1.3")
    assert captured(tmp_path / "mail") == [MESSAGE]
    assert f'logged in as "{USER}" ({mechanism})' in caplog.text
    assert relay.credentials.listen_tls.minimum_version == ssl.TLSVersion.TLSv1_2


async def test_without_auth_mail_is_refused_even_inside_tls(
    make_config, start_relay, listen_security, client_context, tmp_path
):
    relay = await start_relay(make_config(**listen_security(users={USER: PASSWORD})))

    def steps(client: smtplib.SMTP) -> tuple[int, bytes]:
        client.starttls(context=client_context)
        client.ehlo()
        return client.mail("trac@example.org")

    code, text = await smtplib_session(port_of(relay), steps)
    assert (code, text[:5]) == (530, b"5.7.0")
    assert captured(tmp_path / "mail") == []


async def test_required_starttls_refuses_mail_before_it(
    make_config, start_relay, listen_security, client_context, tmp_path
):
    relay = await start_relay(make_config(**listen_security(required=True)))

    def steps(client: smtplib.SMTP) -> tuple[int, bytes]:
        client.ehlo()
        refused = client.mail("trac@example.org")
        client.rset()
        client.starttls(context=client_context)
        client.sendmail("trac@example.org", ["bob@example.org"], MESSAGE)
        return refused

    assert await smtplib_session(port_of(relay), steps) == (
        530,
        b"5.7.0 Must issue a STARTTLS command first",
    )
    assert captured(tmp_path / "mail") == [MESSAGE]


async def test_optional_starttls_keeps_plain_sessions_and_offers_no_auth(
    make_config, start_relay, listen_security, client_context, tmp_path
):
    relay = await start_relay(make_config(**listen_security()))

    def plain(client: smtplib.SMTP) -> bool:
        client.ehlo()
        client.sendmail("trac@example.org", ["bob@example.org"], MESSAGE)
        return client.has_extn("starttls")

    def encrypted(client: smtplib.SMTP) -> tuple[bool, int]:
        client.starttls(context=client_context)
        client.ehlo()
        code, _ = client.docmd("AUTH", "PLAIN AHRyYWMAeA==")
        return client.has_extn("auth"), code

    assert await smtplib_session(port_of(relay), plain)
    assert await smtplib_session(port_of(relay), encrypted) == (False, 504)
    assert captured(tmp_path / "mail") == [MESSAGE]


async def test_unix_socket_needs_neither_starttls_nor_auth(
    make_config, start_relay, listen_security, tmp_path
):
    socket_path = tmp_path / "smtp.sock"
    config = make_config(
        listen=["127.0.0.1:0", {"unix": str(socket_path)}],
        **listen_security(required=True, users={USER: PASSWORD}),
    )
    await start_relay(config)
    async with aiosmtplib.SMTP(socket_path=str(socket_path), start_tls=False) as client:
        assert not client.supports_extension("starttls")
        assert not client.supports_extension("auth")
        await client.sendmail("trac@example.org", ["bob@example.org"], MESSAGE)
    assert captured(tmp_path / "mail") == [MESSAGE]


async def test_reload_puts_a_new_users_file_in_force(
    make_config, start_relay, listen_security, client_context
):
    relay = await start_relay(make_config(**listen_security(users={USER: PASSWORD})))
    relay.reload(make_config(**listen_security(users={USER: "changed-pass"})))

    def login(password: str):
        def steps(client: smtplib.SMTP) -> int:
            client.starttls(context=client_context)
            try:
                return client.login(USER, password)[0]
            except smtplib.SMTPAuthenticationError as exc:
                return exc.smtp_code

        return steps

    assert await smtplib_session(port_of(relay), login(PASSWORD)) == 535
    assert await smtplib_session(port_of(relay), login("changed-pass")) == 235


# --- config -------------------------------------------------------------------------------


def test_auth_without_tls_is_a_config_error(make_config, listen_security):
    sections = listen_security(users={USER: PASSWORD})
    with pytest.raises(ConfigError) as error:
        make_config(listen_auth=sections["listen_auth"])
    assert error.value.key == "listen_auth" and "listen_tls" in error.value.message


@pytest.mark.parametrize("name", ["cert_file", "key_file"])
def test_missing_certificate_file_names_key_and_file(make_config, listen_security, tmp_path, name):
    sections = listen_security()
    sections["listen_tls"][name] = str(tmp_path / "nowhere.pem")
    with pytest.raises(ConfigError) as error:
        make_config(**sections)
    assert error.value.key == f"listen_tls.{name}"
    assert str(tmp_path / "nowhere.pem") in error.value.message


def test_certificate_that_is_not_one_names_cert_file(make_config, listen_security, tmp_path):
    sections = listen_security()
    (tmp_path / "junk.pem").write_text("not a certificate\n")
    sections["listen_tls"]["cert_file"] = str(tmp_path / "junk.pem")
    with pytest.raises(ConfigError) as error:
        make_config(**sections)
    assert error.value.key == "listen_tls.cert_file" and "junk.pem" in error.value.message


def test_key_of_another_certificate_names_key_file(make_config, listen_security, ca, tmp_path):
    sections = listen_security()
    ca.issue_cert("other.example").private_key_pem.write_to_path(str(tmp_path / "other.key"))
    sections["listen_tls"]["key_file"] = str(tmp_path / "other.key")
    with pytest.raises(ConfigError) as error:
        make_config(**sections)
    assert error.value.key == "listen_tls.key_file" and "other.key" in error.value.message


def test_group_readable_users_file_is_refused(make_config, listen_security, tmp_path):
    sections = listen_security(users={USER: PASSWORD})
    (tmp_path / "users").chmod(0o640)
    with pytest.raises(ConfigError) as error:
        make_config(**sections)
    assert error.value.key == "listen_auth.users_file" and "chmod 600" in error.value.message


def test_plain_password_in_users_file_is_refused(make_config, listen_security, tmp_path):
    sections = listen_security(users={USER: PASSWORD})
    with (tmp_path / "users").open("a") as users:
        users.write(f"nagios:{PASSWORD}\n")
    with pytest.raises(ConfigError) as error:
        make_config(**sections)
    assert error.value.key == "listen_auth.users_file"
    assert "line 2" in error.value.message and "plain passwords are refused" in error.value.message
    assert PASSWORD not in str(error.value)


def test_tls_with_only_a_unix_socket_is_a_config_error(make_config, listen_security, tmp_path):
    with pytest.raises(ConfigError) as error:
        make_config(listen=[{"unix": str(tmp_path / "smtp.sock")}], **listen_security())
    assert error.value.key == "listen_tls"


def test_without_secrets_the_key_and_users_stay_unread(make_config, listen_security, tmp_path):
    make_config(**listen_security(users={USER: PASSWORD}))
    (tmp_path / "users").chmod(0o644)  # as a queue command run by another user may see it
    config = load_config(tmp_path / "relay.yaml")
    assert config.listen_auth.users_file == tmp_path / "users"  # named, not read
    with pytest.raises(ConfigError):
        read_credentials(load_config(tmp_path / "relay.yaml"))


def test_hash_password_prints_a_line_the_users_file_accepts():
    done = subprocess.run(
        [sys.executable, "-m", "relay", "hash-password", USER],
        input=f"{PASSWORD}\n",
        capture_output=True,
        text=True,
        check=True,
    )
    assert PASSWORD not in done.stdout + done.stderr
    users = parse_users(done.stdout)
    assert check_login(users, USER, PASSWORD.encode())
    assert not check_login(users, USER, b"wrong")
