"""SPF evaluation (RFC 7208's check_host) for the sender-domain preflight of ``check``.

Evaluates the mechanisms ``all``, ``ip4``, ``ip6``, ``a``, ``mx``, ``include``, ``exists``
and the ``redirect`` modifier for one address, counting DNS-querying terms against the
limit of 10 (section 4.6.4) and "void" lookups against 2. Macros (``%{i}`` …) and ``ptr``
are not expanded: a record that needs them is reported as ``unknown`` with the reason,
never guessed. DNS goes through the caller's query function (the relay's resolver).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from relay.resolver import Lookup

__all__ = ["LOOKUP_LIMIT", "SpfResult", "check_host", "spf_records", "txt_strings"]

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Query = Callable[[str, str], Awaitable[Lookup]]

#: RFC 7208 section 4.6.4: at most 10 terms that cause DNS queries, 2 void lookups.
LOOKUP_LIMIT = 10
_VOID_LIMIT = 2
_RESULTS = {"+": "pass", "-": "fail", "~": "softfail", "?": "neutral"}
_MODIFIER = re.compile(r"([A-Za-z][A-Za-z0-9._-]*)=(.*)")
_MECHANISM = re.compile(r"([+~?-]?)([A-Za-z0-9]+)(?::([^/]*))?(?:/(\d+))?(?://(\d+))?")


@dataclass(frozen=True, slots=True)
class SpfResult:
    """``result``: pass, fail, softfail, neutral, none, permerror, temperror or unknown
    (not evaluated); ``why``: the deciding term or the problem."""

    result: str
    why: str


class _Stop(Exception):
    """Evaluation ends with this result (permerror, temperror, unknown)."""

    def __init__(self, result: str, why: str) -> None:
        super().__init__(why)
        self.result = SpfResult(result, why)


def txt_strings(lookup: Lookup) -> list[str]:
    """Each TXT record of ``lookup`` as one string (its character-strings joined)."""
    return [
        b"".join(record.strings).decode("utf-8", "replace")  # type: ignore[attr-defined]
        for record in lookup.records
    ]


def spf_records(texts: list[str]) -> list[str]:
    """The ``v=spf1`` records among TXT strings."""
    return [
        text for text in texts if text.lower() == "v=spf1" or text.lower().startswith("v=spf1 ")
    ]


async def check_host(address: Address, domain: str, query: Query) -> SpfResult:
    """The SPF result for mail from ``domain`` sent by ``address``."""
    try:
        return await _Evaluation(address, query).check(domain)
    except _Stop as stop:
        return stop.result


class _Evaluation:
    def __init__(self, address: Address, query: Query) -> None:
        self.address = address
        self.query = query
        self.lookups = 0
        self.voids = 0

    async def check(self, domain: str) -> SpfResult:
        record = await self._record(domain)
        if record is None:
            return SpfResult("none", f"no SPF record at {domain}")
        redirect = None
        for term in record.split()[1:]:
            modifier = _MODIFIER.fullmatch(term)
            if modifier:
                if modifier.group(1).lower() == "redirect":
                    redirect = modifier.group(2)
                continue
            mechanism = _MECHANISM.fullmatch(term)
            if not mechanism:
                raise _Stop("permerror", f"{domain}: cannot read the term {term!r}")
            if await self._matches(domain, *mechanism.groups()[1:]):
                qualifier = mechanism.group(1) or "+"
                return SpfResult(_RESULTS[qualifier], f"{term} in the record of {domain}")
        if redirect is not None:
            self._count(redirect)
            result = await self.check(self._target(redirect, domain))
            if result.result == "none":
                raise _Stop("permerror", f"redirect={redirect}: no SPF record there")
            return result
        return SpfResult("neutral", f"no term of {domain}'s record matched (no -all)")

    async def _record(self, domain: str) -> str | None:
        lookup = await self.query(domain, "TXT")
        if lookup.failure:
            raise _Stop("temperror", f"TXT {domain}: {lookup.failure}")
        records = spf_records(txt_strings(lookup))
        if len(records) > 1:
            raise _Stop("permerror", f"{domain} has {len(records)} SPF records; keep one")
        return records[0] if records else None

    def _count(self, term: str) -> None:
        self.lookups += 1
        if self.lookups > LOOKUP_LIMIT:
            raise _Stop(
                "permerror",
                f"more than {LOOKUP_LIMIT} DNS-querying terms (RFC 7208 4.6.4), at {term}; "
                "flatten includes or drop unused ones",
            )

    @staticmethod
    def _target(value: str | None, domain: str) -> str:
        if not value:
            return domain
        if "%" in value:
            raise _Stop("unknown", f"macros ({value}) are not evaluated here; check by hand")
        return value.rstrip(".")

    async def _matches(
        self, domain: str, name: str, value: str | None, cidr4: str | None, cidr6: str | None
    ) -> bool:
        name = name.lower()
        if name == "all":
            return True
        if name in ("ip4", "ip6"):
            return self._in_network(value or "", cidr4)
        if name == "include":
            self._count(f"include:{value}")
            result = await self.check(self._target(value, domain))
            if result.result in ("temperror", "unknown"):
                raise _Stop(result.result, result.why)
            if result.result in ("permerror", "none"):
                raise _Stop("permerror", f"include:{value}: {result.why}")
            return result.result == "pass"
        if name in ("a", "mx", "exists"):
            self._count(f"{name}:{value or domain}")
            target = self._target(value, domain)
            if name == "exists":
                return bool(await self._addresses(target, "A"))
            hosts = [target] if name == "a" else await self._mail_hosts(target)
            v4 = self.address.version == 4
            cidr = cidr4 if v4 else cidr6
            for host in hosts:
                for found in await self._addresses(host, "A" if v4 else "AAAA"):
                    if self._within(found, int(cidr) if cidr else None):
                        return True
            return False
        if name == "ptr":
            raise _Stop("unknown", "ptr is not evaluated (RFC 7208 says not to use it)")
        raise _Stop("permerror", f"{domain}: unknown mechanism {name!r}")

    def _in_network(self, text: str, cidr: str | None) -> bool:
        try:
            network = ipaddress.ip_network(f"{text}/{cidr}" if cidr else text, strict=False)
        except ValueError:
            raise _Stop("permerror", f"not an address or network: {text}") from None
        return self.address.version == network.version and self.address in network

    def _within(self, found: str, prefix: int | None) -> bool:
        bits = prefix if prefix is not None else self.address.max_prefixlen
        return self.address in ipaddress.ip_network(f"{found}/{bits}", strict=False)

    async def _addresses(self, name: str, rdtype: str) -> list[str]:
        lookup = await self.query(name, rdtype)
        if lookup.failure:
            raise _Stop("temperror", f"{rdtype} {name}: {lookup.failure}")
        if not lookup.records:
            self.voids += 1
            if self.voids > _VOID_LIMIT:
                raise _Stop("permerror", f"more than {_VOID_LIMIT} lookups found nothing")
        return [record.to_text() for record in lookup.records]

    async def _mail_hosts(self, domain: str) -> list[str]:
        lookup = await self.query(domain, "MX")
        if lookup.failure:
            raise _Stop("temperror", f"MX {domain}: {lookup.failure}")
        hosts = [record.exchange.to_text(omit_final_dot=True) for record in lookup.records]  # type: ignore[attr-defined]
        if len(hosts) > LOOKUP_LIMIT:
            raise _Stop("permerror", f"{domain} has more than {LOOKUP_LIMIT} MX hosts")
        return hosts
