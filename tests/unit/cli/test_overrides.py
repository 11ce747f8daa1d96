"""``serve`` flags and NOTIFY_RELAY_* variables over a loaded config (pure: no files read)."""

from __future__ import annotations

from pathlib import Path

import pytest

from relay.cli.overrides import Overrides, apply_overrides, read_overrides
from relay.config import load_config
from relay.errors import ConfigError
from relay.receive.options import TcpListener, UnixListener


def overrides(**flags: object) -> Overrides:
    """Overrides from flags only (no environment)."""
    return read_overrides(flags, {})


def error_of(config, found: Overrides) -> str:
    with pytest.raises(ConfigError) as raised:
        apply_overrides(config, found)
    return str(raised.value)


def test_no_flags_change_nothing():
    config = load_config(None)
    assert apply_overrides(config, overrides()) == config


def test_smtp_takes_several_address_forms_and_replaces_listen():
    config = load_config(None)
    new = apply_overrides(
        config, overrides(smtp=["127.0.0.1:2600", "[::1]:2601", "unix:/run/relay/smtp.sock"])
    )
    assert new.listen == (
        TcpListener("127.0.0.1", 2600),
        TcpListener("::1", 2601),
        UnixListener(unix=Path("/run/relay/smtp.sock")),
    )
    assert config.listen == (TcpListener("127.0.0.1", 2525),)  # the loaded one is untouched


def test_web_address_and_off():
    config = load_config(None)
    assert apply_overrides(config, overrides(web="127.0.0.1:9025")).web.listen == TcpListener(
        "127.0.0.1", 9025
    )
    assert apply_overrides(config, overrides(web="off")).web.enabled is False


def test_web_beyond_loopback_needs_users_as_in_the_config_file(tmp_path):
    message = error_of(load_config(None), overrides(web="0.0.0.0:8025"))
    assert message.startswith("--web: web.listen: 0.0.0.0:8025 is reachable beyond this machine")
    config = tmp_path / "relay.yaml"
    config.write_text("web: {allow_unauthenticated: true}\n")
    new = apply_overrides(load_config(config), overrides(web="0.0.0.0:8025"))
    assert new.web.listen == TcpListener("0.0.0.0", 8025) and new.web.allow_unauthenticated


def test_mail_dir_sets_the_capture_store():
    new = apply_overrides(load_config(None), overrides(mail_dir="/srv/mail"))
    assert new.capture.path == Path("/srv/mail")


def test_flags_win_over_the_environment():
    found = read_overrides(
        {"web": "127.0.0.1:9000"},
        {"NOTIFY_RELAY_WEB": "off", "NOTIFY_RELAY_SMTP": "127.0.0.1:2700, unix:/tmp/s.sock"},
    )
    new = apply_overrides(load_config(None), found)
    assert new.web.enabled and new.web.listen == TcpListener("127.0.0.1", 9000)
    assert new.listen == (TcpListener("127.0.0.1", 2700), UnixListener(unix=Path("/tmp/s.sock")))


@pytest.mark.parametrize(
    ("url", "tls", "port"),
    [
        ("smtp+starttls://relay.example.org", "starttls", 587),
        ("smtps://relay.example.org", "implicit", 465),
        ("smtp://relay.example.org:2500", "none", 2500),
    ],
)
def test_upstream_url_schemes(url, tls, port):
    new = apply_overrides(load_config(None), overrides(upstream=url))
    assert new.upstream is not None and new.upstreams == (new.upstream,)
    assert (new.upstream.host, new.upstream.tls, new.upstream.effective_port) == (
        "relay.example.org",
        tls,
        port,
    )
    assert not new.capture_mode


def test_upstream_user_with_password_file():
    found = overrides(
        upstream="smtp+starttls://you%40gmail.com@smtp.gmail.com:587", password_file="/run/pw"
    )
    upstream = apply_overrides(load_config(None), found).upstream
    assert upstream is not None
    assert (upstream.username, upstream.password_file) == ("you@gmail.com", Path("/run/pw"))


def test_password_from_the_environment_is_read_by_name_not_copied():
    found = read_overrides(
        {}, {"NOTIFY_RELAY_UPSTREAM": "smtps://me@mail.example.org", "NOTIFY_RELAY_PASSWORD": "pw"}
    )
    upstream = apply_overrides(load_config(None), found).upstream
    assert upstream is not None and upstream.password_env == "NOTIFY_RELAY_PASSWORD"
    assert upstream.password is None


def test_plain_smtp_with_a_user_is_refused_without_the_config_opt_in(tmp_path):
    found = overrides(upstream="smtp://me@mail.example.org", password_file="/run/pw")
    message = error_of(load_config(None), found)
    assert message.startswith("--upstream: smtp:// would send the password in clear")
    assert "allow_insecure_auth" in message
    config = tmp_path / "relay.yaml"
    config.write_text("upstream: {host: old.example.org, tls: none, allow_insecure_auth: true}\n")
    upstream = apply_overrides(load_config(config), found).upstream
    assert upstream is not None and upstream.host == "mail.example.org"


def test_upstream_is_refused_over_a_capture_config_that_accepts_any_login(tmp_path):
    config = tmp_path / "relay.yaml"
    config.write_text("listen_tls: {}\nlisten_auth: {accept_any: true}\ncapture: {path: m}\n")
    message = error_of(load_config(config), overrides(upstream="smtps://mail.example.org"))
    assert (
        message == "--upstream: listen_auth.accept_any in the config file is for capture mode only"
    )


@pytest.mark.parametrize(
    ("flags", "environ", "expected"),
    [
        ({"smtp": ["localhost"]}, {}, '--smtp: expected "HOST:PORT"'),
        ({}, {"NOTIFY_RELAY_SMTP": "127.0.0.1:x"}, "NOTIFY_RELAY_SMTP: expected a port"),
        ({"web": "unix:/tmp/w.sock"}, {}, '--web: expected "HOST:PORT"'),
        ({}, {"NOTIFY_RELAY_WEB": "nowhere"}, "NOTIFY_RELAY_WEB: expected"),
        ({"upstream": "http://x.org"}, {}, "--upstream: unknown scheme http://"),
        ({}, {"NOTIFY_RELAY_UPSTREAM": "smtps://"}, "NOTIFY_RELAY_UPSTREAM: no host"),
        ({"upstream": "smtps://a:b@x.org"}, {}, "--upstream: no password in the URL"),
        ({"upstream": "smtps://a@x.org"}, {}, "--upstream: a user needs --password-file"),
        ({"password_file": "/pw"}, {}, "--password-file: only with --upstream"),
        ({}, {"NOTIFY_RELAY_PASSWORD": "x"}, "NOTIFY_RELAY_PASSWORD: only with --upstream"),
        ({"upstream": "smtps://x.org", "password_file": "/pw"}, {}, "--upstream: no user"),
    ],
)
def test_errors_name_the_flag_or_variable(flags, environ, expected):
    message = error_of(load_config(None), read_overrides(flags, environ))
    assert message.startswith(expected), message
