"""Fault-injection rules (relay.receive.faults): which rule fires, reproducibly, and what
a config may say."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from relay.config import load_config
from relay.errors import ConfigError
from relay.receive.faults import FaultRule, Faults, FaultsConfig


def rule(**fields: object) -> FaultRule:
    return FaultRule(**{"stage": "rcpt", "reply": "450 4.2.1 Busy", **fields})  # type: ignore[arg-type]


def test_the_first_rule_for_the_stage_that_applies_fires() -> None:
    faults = Faults(
        FaultsConfig(
            rules=(
                rule(stage="mail", reply="451 4.3.0 Mail"),
                rule(recipients=("flaky@*",), reply="450 4.2.1 Flaky"),
                rule(reply="550 5.1.1 Everyone else"),
            )
        )
    )
    assert faults.decide("connect") is None
    assert faults.decide("mail").reply == "451 4.3.0 Mail"
    assert faults.decide("rcpt", ["FLAKY@example.org"]).reply == "450 4.2.1 Flaky"
    assert faults.decide("rcpt", ["bob@example.org"]).reply == "550 5.1.1 Everyone else"


def test_times_limits_how_often_a_rule_fires_and_add_keeps_counting() -> None:
    faults = Faults(FaultsConfig(rules=(rule(times=2),)))
    assert [bool(faults.decide("rcpt", ["a@x"])) for _ in range(3)] == [True, True, False]
    faults.add(rule(stage="data", drop=True, reply=None))
    assert faults.decide("rcpt", ["a@x"]) is None
    assert faults.as_dict()["rules"][0]["fired"] == 2
    assert faults.decide("data", ["a@x"]).drop


def test_a_seeded_rate_fires_the_same_way_every_run() -> None:
    def run() -> list[bool]:
        faults = Faults(FaultsConfig(rules=(rule(rate=0.3),), seed=7))
        return [faults.decide("rcpt", ["a@x"]) is not None for _ in range(200)]

    first = run()
    assert first == run()
    assert 40 <= sum(first) <= 80  # about 30 %


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"reply": "250 ok"}, "expected a 4xx or 5xx reply"),
        ({"reply": "450 busy", "drop": True}, "not both"),
        ({"reply": None}, "needs reply, drop: true or delay"),
        ({"stage": "mail", "recipients": ["a@*"]}, "rcpt and data stages, not mail"),
    ],
)
def test_a_rule_that_makes_no_sense_is_refused(fields: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        rule(**fields)


def write(tmp_path: Path, data: dict) -> Path:
    path = tmp_path / "relay.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_config_errors_name_the_file_and_key(tmp_path: Path) -> None:
    bad = {"capture": {"faults": {"rules": [{"stage": "rcpt", "reply": "250 fine"}]}}}
    with pytest.raises(ConfigError, match=r"relay.yaml: capture.faults.rules: reply: expected"):
        load_config(write(tmp_path, bad))
    relay_mode = {
        "upstream": {"host": "127.0.0.1", "tls": "none"},
        "capture": {"enabled": True, "faults": {"rules": [{"stage": "mail", "drop": True}]}},
    }
    with pytest.raises(ConfigError, match=r"capture.faults: fault injection is for capture mode"):
        load_config(write(tmp_path, relay_mode))
    good = {"capture": {"faults": {"seed": 1, "rules": [{"stage": "data", "delay": "2s"}]}}}
    assert load_config(write(tmp_path, good)).capture.faults.rules[0].delay == 2.0


def test_the_guides_yaml_examples_load(tmp_path: Path) -> None:
    guide = Path(__file__).resolve().parents[3] / "docs" / "how-to" / "testing-with-pytest.md"
    blocks = re.findall(r"```yaml\n(.*?)```", guide.read_text(encoding="utf-8"), re.DOTALL)
    assert len(blocks) == 2
    path = tmp_path / "relay.yaml"
    for block in blocks:
        path.write_text(block)
        capture = load_config(path).capture
        assert capture.faults.rules or capture.webhooks
