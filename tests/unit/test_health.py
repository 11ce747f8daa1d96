"""Readiness from the facts the relay gathers (pure)."""

from __future__ import annotations

from relay.health import readiness

NOW = 1_000_000.0


def judge(**facts):
    base = {
        "listening": ("127.0.0.1:2525",),
        "storage": "/var/lib/notify-relay/queue",
        "storage_problem": None,
        "failing_since": None,
        "now": NOW,
        "grace": 600.0,
    }
    return readiness(**{**base, **facts})


def test_ready_when_listening_writable_and_upstream_fine_or_untried() -> None:
    verdict = judge()
    assert verdict.ready
    assert verdict.as_dict()["checks"]["upstream"] == {
        "ok": True,
        "detail": "reachable, or not tried yet",
    }


def test_unready_without_listeners() -> None:
    verdict = judge(listening=())
    assert not verdict.ready
    assert verdict.as_dict()["checks"]["listeners"]["detail"] == "no SMTP listener is up"


def test_unready_when_storage_is_not_writable() -> None:
    verdict = judge(storage_problem="cannot write to /q: Not a directory")
    assert not verdict.ready and verdict.as_dict()["ready"] is False


def test_a_short_upstream_outage_does_not_flap_readiness() -> None:
    assert judge(failing_since=NOW - 599).ready
    verdict = judge(failing_since=NOW - 601)
    assert not verdict.ready
    assert verdict.as_dict()["checks"]["upstream"]["detail"].startswith("failing for 601 s")
