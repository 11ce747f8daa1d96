"""Capture mode takes what test clients send: STARTTLS with a self-signed certificate made
on first use, and any AUTH (``listen_auth.accept_any``), so an app configured for a real
server can point at it unchanged. Relay mode refuses both shortcuts at config load."""

from __future__ import annotations

import asyncio
import smtplib
import ssl
import stat

import pytest
from helpers import MESSAGE, port_of

from relay.errors import ConfigError


def run_smtplib(port: int, cafile, *, login: tuple[str, str] | None = None) -> str:
    """An app as it talks to a real server: STARTTLS (verifying against ``cafile``), AUTH."""
    context = ssl.create_default_context(cafile=str(cafile))
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as client:
        client.starttls(context=context)
        if login is not None:
            code, _ = client.login(*login)
            assert code == 235
        client.sendmail("app@example.org", ["dev@example.org"], MESSAGE)
        return client.sock.version()


async def test_starttls_with_a_certificate_made_on_first_use(make_config, start_relay, tmp_path):
    relay = await start_relay(make_config(listen_tls={}))
    cert, key = tmp_path / "mail" / "tls" / "cert.pem", tmp_path / "mail" / "tls" / "key.pem"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    version = await asyncio.to_thread(run_smtplib, port_of(relay), cert)
    assert version in ("TLSv1.2", "TLSv1.3")
    assert len(list((tmp_path / "mail" / "new").iterdir())) == 1
    first = cert.read_bytes()
    await relay.stop()
    again = await start_relay(make_config(listen_tls={}))  # the next start reuses it
    assert cert.read_bytes() == first
    await asyncio.to_thread(run_smtplib, port_of(again), cert)


async def test_accept_any_auth_takes_any_login_inside_tls_and_does_not_require_it(
    make_config, start_relay, tmp_path, caplog
):
    relay = await start_relay(make_config(listen_tls={}, listen_auth={"accept_any": True}))
    cert = tmp_path / "mail" / "tls" / "cert.pem"
    await asyncio.to_thread(
        run_smtplib, port_of(relay), cert, login=("me@gmail.com", "whatever-password")
    )
    await asyncio.to_thread(run_smtplib, port_of(relay), cert)  # no AUTH: still taken

    def plain_ehlo() -> str:
        with smtplib.SMTP("127.0.0.1", port_of(relay), timeout=10) as client:
            return client.ehlo()[1].decode()

    assert "AUTH" not in await asyncio.to_thread(plain_ehlo)  # never before STARTTLS
    assert len(list((tmp_path / "mail" / "new").iterdir())) == 2
    assert '"me@gmail.com"' in caplog.text and "whatever-password" not in caplog.text


async def test_a_given_certificate_is_used_in_capture_mode(
    make_config, start_relay, listen_security, ca_file, tmp_path
):
    relay = await start_relay(make_config(**listen_security()))
    await asyncio.to_thread(run_smtplib, port_of(relay), ca_file)
    assert not (tmp_path / "mail" / "tls").exists()


@pytest.mark.parametrize(
    ("auth", "key", "why"),
    [
        (None, "listen_tls.cert_file", "capture mode makes a self-signed"),
        ({"accept_any": True}, "listen_auth.accept_any", "capture mode only"),
    ],
)
def test_relay_mode_refuses_the_capture_shortcuts(make_config, listen_security, auth, key, why):
    upstream = {"host": "127.0.0.1", "port": 9, "tls": "none"}
    sections = {"listen_tls": {}} if auth is None else {**listen_security(), "listen_auth": auth}
    with pytest.raises(ConfigError) as raised:
        make_config(upstream=upstream, **sections)
    assert raised.value.key == key and why in str(raised.value)


def test_accept_any_and_a_users_file_do_not_mix(make_config, tmp_path):
    users = tmp_path / "users"
    users.write_text("")
    users.chmod(0o600)
    with pytest.raises(ConfigError) as raised:
        make_config(listen_tls={}, listen_auth={"accept_any": True, "users_file": str(users)})
    assert raised.value.key == "listen_auth.accept_any"
