"""The DKIM signer as a function (header list, re-signing, which keys apply), the ``dkim:``
config and its errors, and ``notify-relay dkim keygen``. Verification against other
implementations is in tests/integration/test_dkim.py."""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path

import pytest
from dkimtools import write_key

from relay.cli.main import main
from relay.config import load_config
from relay.credentials import read_credentials
from relay.deliver.dkim import planned, sign
from relay.errors import ConfigError
from relay.model import Envelope
from relay.record import Record

MESSAGE = (
    b"From: Trac <trac@tickets.example.org>\r\nTo: dev@example.org\r\nSubject: #1\r\n"
    b"Date: Thu, 03 Dec 2026 16:00:00 +0000\r\n\r\nHello\r\n"
)


def load(tmp_path: Path, entries: list[dict]) -> object:
    import yaml

    path = tmp_path / "relay.yaml"
    path.write_text(yaml.safe_dump({"dkim": entries}))
    return read_credentials(load_config(path))


def keys_for(tmp_path: Path, *specs: tuple[str, str, str], **extra) -> tuple:
    entries = [{**write_key(tmp_path, *spec)[0], **extra} for spec in specs]
    return load(tmp_path, entries).dkim_keys


def tags(message: bytes) -> list[dict[str, str]]:
    """The tags of each DKIM-Signature field, unfolded."""
    found = re.findall(rb"DKIM-Signature:(.*?)\r\n(?! )", message, flags=re.S)
    return [
        dict(part.strip().split("=", 1) for part in re.sub(r"\s+", "", f.decode()).split(";"))
        for f in found
    ]


def test_the_header_list_oversigns_from_subject_and_the_list_headers(tmp_path):
    (key,) = keys_for(tmp_path, ("example.org", "s1", "rsa-sha256"), subdomains=True)
    signed = sign(MESSAGE, [key])
    (fields,) = tags(signed.message)
    names = fields["h"].split(":")
    assert names.count("from") == 2 and names.count("subject") == 2 and names.count("to") == 2
    assert names.count("date") == 2 and "list-id" in names and "list-unsubscribe-post" in names
    assert names.count("cc") == 1  # absent but oversigned: a Cc: added later breaks it
    assert (fields["c"], fields["d"], fields["s"]) == ("relaxed/relaxed", "example.org", "s1")
    assert signed.trace[0].change == "DKIM-Signature added: d=example.org s=s1 a=rsa-sha256"


def test_only_keys_covering_the_from_domain_sign(tmp_path):
    exact, ed = keys_for(
        tmp_path, ("example.org", "s1", "rsa-sha256"), ("example.org", "s2", "ed25519-sha256")
    )
    assert sign(MESSAGE, [exact, ed]).message == MESSAGE  # tickets.example.org: no subdomains
    plain = MESSAGE.replace(b"tickets.example.org", b"example.org")
    assert [t["a"] for t in tags(sign(plain, [exact, ed]).message)] == [
        "rsa-sha256",
        "ed25519-sha256",
    ]
    assert sign(b"Subject: no From\r\n\r\nx\r\n", [exact]).message.count(b"DKIM") == 0


def test_relay_mode_notes_in_the_trace_what_delivery_will_sign(tmp_path):
    (key,) = keys_for(tmp_path, ("example.org", "s1", "ed25519-sha256"), subdomains=True)
    envelope = Envelope(sender="trac@example.org", recipients=("dev@example.org",))
    record = planned(Record(queue_id="Q1", envelope=envelope, message=MESSAGE), [key])
    assert record.message == MESSAGE  # signed only as it goes out
    assert [entry.change for entry in record.trace] == [
        "DKIM-Signature added when sent: d=example.org s=s1 a=ed25519-sha256"
    ]


def test_rewrite_shows_the_signatures_delivery_adds(tmp_path, capsys):
    entry, _ = write_key(tmp_path, "example.org", "s1", "rsa-sha256")
    load(tmp_path, [{**entry, "subdomains": True}])
    (tmp_path / "m.eml").write_bytes(MESSAGE)
    argv = ["rewrite", "-c", str(tmp_path / "relay.yaml"), "--to", "dev@example.org"]
    assert main([*argv, str(tmp_path / "m.eml")]) == 0
    assert "[dkim] DKIM-Signature added when sent: d=example.org s=s1 a=rsa-sha256" in (
        capsys.readouterr().out
    )


def test_signing_again_replaces_own_signatures_and_keeps_foreign_ones(tmp_path):
    (key,) = keys_for(tmp_path, ("example.org", "s1", "rsa-sha256"), subdomains=True)
    foreign = b"DKIM-Signature: v=1; a=rsa-sha256; d=example.net; s=s1; b=abc\r\n"
    twice = sign(sign(foreign + MESSAGE, [key]).message, [key]).message
    assert [(t["d"], t["s"]) for t in tags(twice)] == [("example.org", "s1"), ("example.net", "s1")]


def test_a_key_readable_by_others_is_refused_naming_key_and_file(tmp_path):
    entry, _ = write_key(tmp_path, "example.org", "s1", "rsa-sha256")
    os.chmod(entry["private_key_file"], 0o640)
    with pytest.raises(ConfigError) as raised:
        load(tmp_path, [entry])
    text = str(raised.value)
    assert "dkim[0].private_key_file" in text and entry["private_key_file"] in text
    assert "chmod 600" in text


def test_a_key_of_the_wrong_algorithm_is_refused(tmp_path):
    entry, _ = write_key(tmp_path, "example.org", "s1", "rsa-sha256")
    with pytest.raises(ConfigError) as raised:
        load(tmp_path, [{**entry, "algorithm": "ed25519-sha256"}])
    assert "dkim[0].private_key_file" in str(raised.value)
    assert "ed25519-sha256 needs an Ed25519 key" in str(raised.value)


def test_a_bad_selector_is_refused(tmp_path):
    entry, _ = write_key(tmp_path, "example.org", "s1", "rsa-sha256")
    with pytest.raises(ConfigError) as raised:
        load(tmp_path, [{**entry, "selector": "nr 2026"}])
    assert "dkim[0].selector" in str(raised.value)


@pytest.mark.parametrize("algorithm", ["rsa-sha256", "ed25519-sha256"])
def test_keygen_writes_an_owner_only_key_and_prints_its_record(tmp_path, capsys, algorithm):
    old = os.umask(0o022)
    try:
        argv = ["dkim", "keygen", "--domain", "example.org", "--selector", "nr2026"]
        code = main([*argv, "--algorithm", algorithm, "--out", str(tmp_path)])
    finally:
        os.umask(old)
    assert code == 0
    path = tmp_path / "example.org.nr2026.key"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    printed = capsys.readouterr().out
    entry = {"domain": "example.org", "selector": "nr2026", "private_key_file": str(path)}
    (key,) = load(tmp_path, [{**entry, "algorithm": algorithm}]).dkim_keys
    assert f'nr2026._domainkey.example.org. IN TXT "{key.record}"' in printed
    assert main([*argv, "--out", str(tmp_path)]) == 1  # never replaces a key
