"""What a process of a split relay started after a reload gets: the reloaded settings, but
those only a restart applies as the relay started with them."""

from __future__ import annotations

from relay.service import restart_needed, restart_only_kept


def test_settings_only_a_restart_applies_stay_as_started_and_the_rest_is_new(make_config):
    upstream = {"host": "127.0.0.1", "port": 2526, "tls": "none"}
    running = make_config(
        upstream={**upstream, "connections": 2},
        allowed_networks=["127.0.0.0/8"],
        web={"listen": "127.0.0.1:8025"},
        notification={"smtp_subject_prefix": "[one]"},
    )
    new = make_config(
        upstream={**upstream, "connections": 5, "timeout": 7},
        allowed_networks=["192.0.2.0/24"],
        web={"listen": "127.0.0.1:9025"},
        notification={"smtp_subject_prefix": "[two]"},
        queue={"path": "elsewhere"},
        workers=3,
    )
    kept = restart_only_kept(running, new)
    assert restart_needed(running, kept) == []
    assert kept.upstream is not None and kept.upstream.connections == 2
    assert kept.upstream.timeout == 7
    assert kept.notification.smtp_subject_prefix == "[two]"
    assert kept.allowed_networks == running.allowed_networks
    assert kept.queue.path == running.queue.path and kept.queue.retry == new.queue.retry
    assert kept.web.listen == running.web.listen
    assert kept.workers == running.workers


def test_capture_mode_has_no_upstream_to_keep_connections_of(make_config, tmp_path):
    running = make_config(capture={"path": str(tmp_path / "one")})
    new = make_config(capture={"path": str(tmp_path / "two")}, hostname="other.example")
    kept = restart_only_kept(running, new)
    assert kept.upstream is None
    assert kept.capture == running.capture and kept.hostname == running.hostname
