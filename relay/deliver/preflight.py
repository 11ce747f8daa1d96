"""The sender-domain preflight of ``notify-relay check``: SPF, DKIM and DMARC of each From
domain the relay sends, and plainly what to publish or fix.

The domains come from ``notification.smtp_from``, the upstream accounts (with
``align_sender``) and the ``dkim`` entries. The relay puts those domains in both the
envelope sender and ``From:``, so SPF is evaluated for the envelope domain being the From
domain. The addresses SPF is checked for are the smarthost's (the provider's records must
cover them, usually through its ``include:``), or this host's with ``upstream: mx``.
Every query goes to the configured resolver (``dns:``).
"""

from __future__ import annotations

import asyncio
import ipaddress
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from relay.cleanup.mailbox import domain_of
from relay.cleanup.options import CleanupOptions
from relay.deliver.dkim import DkimConfig, SigningKey
from relay.deliver.options import UpstreamConfig
from relay.deliver.spf import Address, SpfResult, check_host, txt_strings
from relay.resolver import DnsConfig, Resolver

__all__ = ["Finding", "Sending", "check_sender_domains", "preflight", "report", "sender_domains"]

_POLICY_EFFECT = {"reject": "reject", "quarantine": "put in spam", "none": "only report"}


class Sending(Protocol):
    """What the preflight reads of the configuration (a :class:`~relay.config.RelayConfig`)."""

    @property
    def notification(self) -> CleanupOptions: ...
    @property
    def upstream(self) -> UpstreamConfig | None: ...
    @property
    def upstreams(self) -> Sequence[UpstreamConfig]: ...
    @property
    def dkim(self) -> Sequence[DkimConfig]: ...
    @property
    def hostname(self) -> str: ...
    @property
    def dns(self) -> DnsConfig: ...


@dataclass(frozen=True, slots=True)
class Finding:
    """One check of one domain: ``ok`` True (fine), False (must be fixed) or None (a
    warning); ``fix`` says what to publish or change."""

    domain: str
    check: str
    ok: bool | None
    text: str
    fix: str = ""


def sender_domains(config: Sending) -> dict[str, str]:
    """Each From domain the relay sends, with the config key it comes from."""
    found: dict[str, str] = {}
    options = config.notification
    if options.smtp_from:
        domain = domain_of(options.smtp_from) or options.smtp_default_domain
        if domain:
            found.setdefault(domain.lower(), "notification.smtp_from")
    if options.align_sender:
        for upstream in config.upstreams:
            if upstream.username and domain_of(upstream.username):
                found.setdefault(domain_of(upstream.username), f"{upstream} username")
    for n, entry in enumerate(config.dkim):
        found.setdefault(entry.domain, f"dkim[{n}].domain")
    return found


async def _sending_addresses(config: Sending, resolver: Resolver) -> tuple[str, list[Address]]:
    """Who hands the mail to the recipients' servers, and its addresses."""
    upstream = config.upstream
    if upstream is None or upstream.mx:
        who, name = "this host", config.hostname
    else:
        who, name = "the upstream", upstream.host
    try:
        return f"{who} {name}", [ipaddress.ip_address(name)]
    except ValueError:
        pass
    found: list[Address] = []
    for rdtype in ("A", "AAAA"):
        lookup = await resolver.query(name, rdtype)
        found += [ipaddress.ip_address(record.to_text()) for record in lookup.records]
    return f"{who} {name}", found


async def preflight(
    config: Sending, resolver: Resolver, keys: Sequence[SigningKey] = ()
) -> list[Finding]:
    """SPF, DKIM and DMARC findings for every sender domain (none: nothing to check)."""
    domains = sender_domains(config)
    if not domains:
        return []
    who, addresses = await _sending_addresses(config, resolver)
    findings: list[Finding] = []
    for domain in domains:
        spf = await _spf(domain, who, addresses, resolver)
        covering = [key for key in keys if key.config.covers(domain)]
        dkim = [await _dkim(domain, key, resolver) for key in covering] or [_unsigned(domain)]
        signing = [key for key, finding in zip(covering, dkim, strict=False) if finding.ok]
        findings += [spf, *dkim, await _dmarc(domain, spf.ok is True, signing, resolver)]
    return findings


async def _spf(domain: str, who: str, addresses: list[Address], resolver: Resolver) -> Finding:
    if not addresses:
        return Finding(domain, "spf", None, f"{who} has no address to check SPF for")
    results = [(ip, await check_host(ip, domain, resolver.query)) for ip in addresses]
    bad = [(address, result) for address, result in results if result.result != "pass"]
    if not bad:
        address, result = results[0]
        return Finding(domain, "spf", True, f"pass for {who} ({address}): {result.why}")
    address, result = bad[0]
    text = f"{result.result} for {who} ({address}): {result.why}"
    return Finding(domain, "spf", _severity(result), text, _spf_fix(domain, address, result))


def _severity(result: SpfResult) -> bool | None:
    return None if result.result in ("temperror", "unknown") else False


def _spf_fix(domain: str, address: Address, result: SpfResult) -> str:
    mechanism = f"ip{address.version}:{address}"
    if result.result == "none":
        return (
            f'publish {domain}. IN TXT "v=spf1 {mechanism} -all" (through a provider: its '
            "include, e.g. include:_spf.google.com or include:spf.protection.outlook.com)"
        )
    if result.result in ("fail", "softfail", "neutral"):
        return f"add {mechanism} (or the provider's include:) to {domain}'s SPF before its all"
    return "" if result.result in ("temperror", "unknown") else f"repair {domain}'s SPF record"


async def _dkim(domain: str, key: SigningKey, resolver: Resolver) -> Finding:
    publish = f'publish {key.name}. IN TXT "{key.record}"'
    lookup = await resolver.query(key.name, "TXT")
    if lookup.failure:
        return Finding(domain, "dkim", None, f"TXT {key.name}: {lookup.failure}")
    tags = next((_tags(text) for text in txt_strings(lookup) if "p=" in text), None)
    where = f"{key.name} ({key.config.algorithm}, {key.config.private_key_file})"
    if tags is None:
        return Finding(domain, "dkim", False, f"no DKIM key published at {where}", publish)
    if not tags.get("p"):
        return Finding(domain, "dkim", False, f"the key at {key.name} is revoked (p=)", publish)
    kind = "ed25519" if key.config.algorithm == "ed25519-sha256" else "rsa"
    if tags["p"] != key.public or tags.get("k", "rsa").lower() != kind:
        text = f"the key published at {key.name} does not match {key.config.private_key_file}"
        return Finding(domain, "dkim", False, text, f"{publish}, or use the matching key file")
    text = f"the key at {where} matches; signing d={key.config.domain}"
    return Finding(domain, "dkim", True, text)


def _unsigned(domain: str) -> Finding:
    return Finding(
        domain,
        "dkim",
        False,
        "the relay does not sign mail from this domain (no dkim entry covers it)",
        f"run notify-relay dkim keygen --domain {domain} --selector SELECTOR --out DIR and "
        "add the dkim entry it prints; Gmail and Microsoft want SPF and DKIM",
    )


async def _dmarc(
    domain: str, spf_passes: bool, signing: list[SigningKey], resolver: Resolver
) -> Finding:
    found, tags = "", None
    for name in dict.fromkeys([f"_dmarc.{domain}", f"_dmarc.{_organizational(domain)}"]):
        lookup = await resolver.query(name, "TXT")
        if lookup.failure:
            return Finding(domain, "dmarc", None, f"TXT {name}: {lookup.failure}")
        records = [text for text in txt_strings(lookup) if text.upper().startswith("V=DMARC1")]
        if records:
            found, tags = name, _tags(records[0])
            break
    if tags is None:
        return Finding(
            domain,
            "dmarc",
            False,
            f"no DMARC record at _dmarc.{domain}",
            f'publish _dmarc.{domain}. IN TXT "v=DMARC1; p=none; rua=mailto:dmarc@{domain}" '
            "(Gmail and Yahoo require one from bulk senders; tighten p= later)",
        )
    policy = tags.get("p", "none").lower()
    strict = tags.get("adkim", "r").lower() == "s"
    aligned = [k for k in signing if not strict or k.config.domain == domain]
    through = ["SPF"] * spf_passes + [f"DKIM d={k.config.domain}" for k in aligned[:1]]
    if through:
        return Finding(
            domain, "dmarc", True, f"p={policy} at {found}; aligned through {', '.join(through)}"
        )
    hint = " (adkim=s: sign with d= exactly this domain)" if strict and signing else ""
    effect = _POLICY_EFFECT.get(policy, policy)
    return Finding(
        domain,
        "dmarc",
        False if policy != "none" else None,
        f"p={policy} at {found}, but neither SPF nor DKIM passes aligned with From: "
        f"{domain}: receivers will {effect} this mail{hint}",
        "fix the SPF or DKIM findings above",
    )


def _organizational(domain: str) -> str:
    """The registered domain, approximated by the last two labels (no public suffix list)."""
    return ".".join(domain.split(".")[-2:])


def _tags(text: str) -> dict[str, str]:
    """``k=v; k=v`` tags (DKIM key or DMARC record), white space removed from values."""
    tags = {}
    for part in text.split(";"):
        name, sep, value = part.partition("=")
        if sep:
            tags[name.strip().lower()] = "".join(value.split())
    return tags


def report(findings: list[Finding]) -> list[str]:
    """The findings as ``check`` prints them, one block per domain."""
    lines, domain = [], None
    for finding in findings:
        if finding.domain != domain:
            domain = finding.domain
            lines.append(f"sender domain {domain}")
        status = {True: "ok", False: "FAIL", None: "warn"}[finding.ok]
        lines.append(f"  {status:<5} {finding.check:<12} {finding.text}")
        if finding.fix:
            lines.append(f"        what to do: {finding.fix}")
    return lines


def check_sender_domains(
    config: Sending, keys: Sequence[SigningKey] = (), out: Callable[[str], None] = print
) -> bool:
    """Run :func:`preflight` and print its report; False when something must be fixed."""
    findings = asyncio.run(preflight(config, Resolver(config.dns), keys))
    for line in report(findings):
        out(line)
    return all(finding.ok is not False for finding in findings)
