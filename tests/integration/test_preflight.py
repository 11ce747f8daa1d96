"""The sender-domain preflight (SPF, DKIM, DMARC) against records served by the local DNS
server: good, missing and misaligned records, and ``notify-relay check`` printing it."""

from __future__ import annotations

import asyncio

import pytest
from dkimtools import txt, write_key
from dnsserver import DnsServer
from upstream import FakeUpstream

from relay.cli.main import main
from relay.credentials import read_credentials
from relay.deliver.preflight import preflight
from relay.resolver import Resolver

PROVIDER = {
    "smtp.provider.test A": ["127.0.0.1"],
    "_spf.provider.test TXT": ['"v=spf1 ip4:127.0.0.0/8 -all"'],
}


@pytest.fixture
def key(tmp_path):
    """An RSA key for example.org: its ``dkim:`` entry and published TXT record."""
    return write_key(tmp_path, "example.org", "nr2026", "rsa-sha256")


def configure(make_config, dns, entries, host="smtp.provider.test", **notification):
    return make_config(
        upstream={"host": host, "tls": "none"},
        notification={"smtp_from": "trac@example.org", **notification},
        dkim=entries,
        dns=dns.config(),
    )


def run_preflight(config):
    return asyncio.run(preflight(config, Resolver(config.dns), read_credentials(config).dkim_keys))


def findings_of(config):
    found = run_preflight(config)
    return {finding.check: finding for finding in found if finding.domain == "example.org"}


def test_good_records_pass_every_check(make_config, key):
    entry, record = key
    records = {
        **PROVIDER,
        "example.org TXT": ['"v=spf1 include:_spf.provider.test -all"'],
        "nr2026._domainkey.example.org TXT": [txt(record)],
        "_dmarc.example.org TXT": ['"v=DMARC1; p=reject; adkim=s"'],
    }
    with DnsServer(records) as dns:
        found = findings_of(configure(make_config, dns, [entry]))
    assert [found[c].ok for c in ("spf", "dkim", "dmarc")] == [True, True, True], found
    assert "pass for the upstream smtp.provider.test (127.0.0.1)" in found["spf"].text
    assert "include:_spf.provider.test in the record of example.org" in found["spf"].text
    assert found["dmarc"].text == (
        "p=reject at _dmarc.example.org; aligned through SPF, DKIM d=example.org"
    )


def test_missing_records_say_what_to_publish(make_config, key):
    entry, record = key
    with DnsServer(PROVIDER) as dns:
        found = findings_of(configure(make_config, dns, [entry]))
    assert [found[c].ok for c in ("spf", "dkim", "dmarc")] == [False, False, False]
    assert found["spf"].text.startswith("none for the upstream")
    assert 'publish example.org. IN TXT "v=spf1 ip4:127.0.0.1 -all"' in found["spf"].fix
    assert found["dkim"].fix == f'publish nr2026._domainkey.example.org. IN TXT "{record}"'
    assert found["dmarc"].fix.startswith('publish _dmarc.example.org. IN TXT "v=DMARC1; p=none')


def test_misaligned_records_fail_with_the_reason(make_config, key, tmp_path):
    entry, _ = key
    (tmp_path / "other").mkdir()
    _, other_record = write_key(tmp_path / "other", "example.org", "nr2026", "rsa-sha256")
    records = {
        **PROVIDER,
        "example.org TXT": ['"v=spf1 ip4:192.0.2.0/24 ~all"'],
        "nr2026._domainkey.example.org TXT": [txt(other_record)],
        "_dmarc.example.org TXT": ['"v=DMARC1; p=quarantine"'],
    }
    with DnsServer(records) as dns:
        found = findings_of(configure(make_config, dns, [entry]))
    assert found["spf"].ok is False and found["spf"].text.startswith("softfail")
    assert "add ip4:127.0.0.1" in found["spf"].fix
    assert found["dkim"].ok is False and "does not match" in found["dkim"].text
    assert found["dmarc"].ok is False
    assert "neither SPF nor DKIM passes aligned" in found["dmarc"].text
    assert "receivers will put in spam this mail" in found["dmarc"].text


def test_strict_dkim_alignment_needs_the_exact_domain(make_config, tmp_path):
    entry, record = write_key(tmp_path, "example.org", "nr2026", "rsa-sha256")
    records = {
        **PROVIDER,
        "tickets.example.org TXT": ['"v=spf1 -all"'],
        "nr2026._domainkey.example.org TXT": [txt(record)],
        "_dmarc.example.org TXT": ['"v=DMARC1; p=reject; adkim=s"'],  # inherited
    }
    with DnsServer(records) as dns:
        config = configure(
            make_config, dns, [{**entry, "subdomains": True}], smtp_from="trac@tickets.example.org"
        )
        found = run_preflight(config)
    dmarc = next(f for f in found if f.domain == "tickets.example.org" and f.check == "dmarc")
    assert dmarc.ok is False and "adkim=s: sign with d= exactly this domain" in dmarc.text


def test_spf_follows_redirect_and_mx_and_enforces_the_lookup_limit(make_config, key):
    entry, _ = key
    includes = " ".join(f"include:s{n}.ex.org" for n in range(11))
    records = {
        **PROVIDER,
        "example.org TXT": ['"v=spf1 redirect=_spf.example.org"'],
        "_spf.example.org TXT": ['"v=spf1 mx -all"'],  # after a redirect, mx means its MX
        "_spf.example.org MX": ["10 mx.example.org."],
        "mx.example.org A": ["127.0.0.1"],
        "many.example.org TXT": [txt(f"v=spf1 {includes} -all")],
        **{f"s{n}.ex.org TXT": ['"v=spf1 ip4:192.0.2.1 -all"'] for n in range(11)},
    }
    with DnsServer(records) as dns:
        found = findings_of(configure(make_config, dns, [entry]))
        assert found["spf"].ok and "mx in the record of _spf.example.org" in found["spf"].text
        config = configure(make_config, dns, [], smtp_from="trac@many.example.org")
        many = run_preflight(config)[0]
    assert many.ok is False and "more than 10 DNS-querying terms" in many.text


def test_check_prints_the_sender_domains_and_exits_65_on_problems(
    make_config, key, tmp_path, capsys
):
    entry, record = key
    with FakeUpstream() as upstream:
        records = {"example.org TXT": ['"v=spf1 ip4:127.0.0.1 -all"']}
        with DnsServer(records) as dns:
            config = make_config(
                upstream={"host": "127.0.0.1", "port": upstream.port, "tls": "none"},
                notification={"smtp_from": "trac@example.org"},
                dkim=[entry],
                dns=dns.config(),
            )
            code = main(["check", "-c", str(tmp_path / "relay.yaml")])
            records["nr2026._domainkey.example.org TXT"] = [txt(record)]
            records["_dmarc.example.org TXT"] = ['"v=DMARC1; p=none"']
            fixed = main(["check", "-c", str(tmp_path / "relay.yaml")])
    assert config.notification.smtp_from == "trac@example.org"
    out = capsys.readouterr().out
    assert code == 65 and fixed == 0
    assert "sender domain example.org" in out
    assert "  ok    spf          pass for the upstream 127.0.0.1 (127.0.0.1)" in out
    assert "  FAIL  dkim         no DKIM key published at nr2026._domainkey.example.org" in out
    assert f'what to do: publish nr2026._domainkey.example.org. IN TXT "{record}"' in out
