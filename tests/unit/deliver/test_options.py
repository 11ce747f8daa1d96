"""The upstream config shapes: one upstream, a list, MX, OAuth2, quota, DNS; and their errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from relay.config import load_config
from relay.credentials import read_credentials
from relay.errors import ConfigError


def load(tmp_path: Path, text: str, **options):
    path = tmp_path / "relay.yaml"
    path.write_text(text)
    return load_config(path, **options)


def error_of(tmp_path: Path, text: str, **options) -> str:
    """The error of loading ``text``, and of reading the secrets it names, as at start."""
    with pytest.raises(ConfigError) as raised:
        read_credentials(load(tmp_path, text, **options))
    return str(raised.value)


@pytest.fixture
def secret_files(tmp_path):
    for name in ("client-secret", "refresh-token"):
        (tmp_path / name).write_text(f"{name}-value\n")
        (tmp_path / name).chmod(0o600)
    return tmp_path


def test_one_upstream_is_also_the_list_of_upstreams(tmp_path):
    config = load(tmp_path, "upstream: {host: smtp.example.org}\n")
    assert config.upstreams == (config.upstream,) and str(config.upstream) == "smtp.example.org:587"


def test_a_list_of_upstreams_makes_the_first_the_upstream(tmp_path):
    config = load(
        tmp_path,
        "upstreams:\n"
        "  - {name: local, host: mail.internal, tls: none, recipients: ['*@internal.example']}\n"
        "  - {name: gmail, host: smtp.gmail.com, port: 465, tls: implicit}\n"
        "  - mx\n",
    )
    local, gmail, mx = config.upstreams
    assert config.upstream is local and not config.capture_mode
    assert (str(local), str(gmail), mx.mx, mx.effective_port) == ("local", "gmail", True, 25)


def test_upstream_mx_is_short_for_mx_true(tmp_path):
    config = load(tmp_path, "upstream: mx\n")
    assert config.upstream.mx and str(config.upstream) == "mx"
    assert load(tmp_path, "upstream: {mx: true, port: 2525}\n").upstream.effective_port == 2525


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("upstream: {host: a}\nupstreams: [mx]\n", "upstreams: give upstream (one) or upstreams"),
        ("upstreams: [{host: a, recipients: ['*@x']}]\n", "upstreams: every upstream has senders"),
        ("upstream: {mx: true, username: u, password: p}\n", "upstream.username: not used with mx"),
        ("upstream: {mx: true, tls: implicit}\n", "upstream.tls: not used with mx"),
        ("upstream: {port: 25}\n", "upstream.host: required key is missing"),
        (
            "upstreams: [{host: a}, {host: b, username: u}]\n",
            "upstreams[1].username: username without",
        ),
        (
            "upstream: {host: a, auth: xoauth2, username: u}\n",
            "upstream.oauth: auth: xoauth2 needs",
        ),
        (
            "upstream: {host: a, auth: xoauth2, username: u, password: p,"
            " oauth: {token_command: x}}\n",
            "upstream.password: auth: xoauth2 needs",
        ),
        ("upstream: {host: a, oauth: {token_command: x}}\n", "upstream.auth: oauth is used with"),
        (
            "upstream: {host: a, auth: xoauth2, username: u,"
            " oauth: {provider: google, client_id: c}}\n",
            "upstream.oauth: client_id and refresh_token_file are required",
        ),
        (
            "upstream: {host: a, auth: xoauth2, username: u,"
            " oauth: {token_url: 'http://tokens.example/t', client_id: c,"
            " refresh_token_file: /x}}\n",
            "upstream.oauth.token_url: expected an https:// URL",
        ),
        ("upstream: {host: a, quota: {}}\n", "upstream.quota: give a preset"),
        ("upstream: {host: a, quota: {preset: yahoo}}\n", "upstream.quota.preset: expected one of"),
        ("dns: {nameservers: [dns.example]}\n", "dns.nameservers: expected IP addresses"),
    ],
)
def test_mistakes_name_the_key(tmp_path, text, message):
    assert message in error_of(tmp_path, text)


def test_oauth_secrets_are_read_once_and_must_be_private(tmp_path, secret_files):
    text = (
        "upstream: {host: smtp.gmail.com, username: trac@example.org, auth: xoauth2,\n"
        "  oauth: {provider: google, client_id: id.apps, client_secret_file: client-secret,\n"
        "          refresh_token_file: refresh-token}}\n"
    )
    config = load(tmp_path, text)
    secrets = read_credentials(config).upstream[config.upstream]
    assert secrets.refresh_token.reveal() == "refresh-token-value"
    assert secrets.client_secret.reveal() == "client-secret-value"
    assert "value" not in repr(secrets)
    (tmp_path / "refresh-token").chmod(0o644)
    assert "upstream.oauth.refresh_token_file:" in error_of(tmp_path, text)
    assert "chmod 600" in error_of(tmp_path, text)
    (tmp_path / "refresh-token").unlink()  # before `notify-relay oauth` has run
    assert read_credentials(load(tmp_path, text), upstream=False).upstream == {}


def test_secrets_are_read_per_upstream_and_errors_name_where_each_was_given(
    tmp_path, secret_files, monkeypatch
):
    monkeypatch.setenv("RELEASE_PW", "release-value")
    text = (
        "upstreams:\n"
        "  - {host: a.example, username: u, password_file: client-secret}\n"
        "  - {host: b.example, username: u, password_file: refresh-token}\n"
        "capture: {release: {upstream: {host: c.example, username: u, password_env: RELEASE_PW}}}\n"
    )
    config = load(tmp_path, text)
    secrets = read_credentials(config).upstream
    release = config.capture.release.upstream
    assert [secrets[u].password.reveal() for u in (*config.upstreams, release)] == [
        "client-secret-value",
        "refresh-token-value",
        "release-value",
    ]
    (tmp_path / "refresh-token").unlink()
    assert "relay.yaml: upstreams[1].password_file: cannot read" in error_of(tmp_path, text)
    (tmp_path / "refresh-token").write_text("again\n")
    (tmp_path / "refresh-token").chmod(0o600)
    monkeypatch.delenv("RELEASE_PW")
    assert (
        "relay.yaml: capture.release.upstream.password_env: environment variable RELEASE_PW "
        "is not set" in error_of(tmp_path, text)
    )


def test_quota_presets_and_dns_section(tmp_path):
    config = load(
        tmp_path,
        "upstream: {host: smtp.gmail.com, quota: {preset: gmail, per_minute: 20}}\n"
        "dns: {nameservers: [127.0.0.1, '::1'], port: 5353, timeout: 2s, on_timeout: accept}\n",
    )
    quota = config.upstream.quota
    assert (quota.message_limit, quota.recipient_limit, quota.per_minute) == (500, 500, 20)
    assert config.dns.nameservers == ("127.0.0.1", "::1") and config.dns.port == 5353
    assert config.dns.check_recipient_domains is None and config.dns.on_timeout == "accept"
