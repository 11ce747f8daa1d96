"""DNS queries for mail (dnspython, async) behind a cache that keeps answers for their TTL.

A failure to get an answer (timeout, SERVFAIL, no resolver) is a value, never cached and
never raised: callers must treat it as "try later", never as "does not exist".
"""

from __future__ import annotations

import ipaddress
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

import dns.asyncresolver
import dns.exception
import dns.rdata
import dns.rdatatype
import dns.resolver

__all__ = ["DnsConfig", "Lookup", "Resolver"]

#: Seconds a "no such domain" answer is kept when the reply carries no SOA record.
_NEGATIVE_TTL = 300.0
#: Longest a cached answer is kept, whatever its TTL says.
_MAX_TTL = 86400.0
_MAX_ENTRIES = 10_000


def _nameservers(value: object) -> tuple[str, ...]:
    items = value if isinstance(value, list) else [value]
    try:
        return tuple(str(ipaddress.ip_address(str(item))) for item in items)
    except ValueError:
        raise ValueError(f"expected IP addresses such as 127.0.0.1, got {value!r}") from None


@dataclass(frozen=True, slots=True, kw_only=True)
class DnsConfig:
    """The resolver for MX delivery and the recipient-domain check at RCPT time.

    ``nameservers`` empty: the system's (``/etc/resolv.conf``). ``check_recipient_domains``
    unset: on for recipients delivered to MX hosts. ``on_timeout``: what RCPT answers when DNS
    does not (``defer``: 451 4.4.3; ``accept``: take the recipient, delivery checks again).
    """

    nameservers: tuple[str, ...] = field(default=(), metadata={"parse": _nameservers})
    port: int = field(default=53, metadata={"min": 1, "max": 65535})
    timeout: float = field(default=5.0, metadata={"duration": True, "min": 0.1})
    check_recipient_domains: bool | None = None
    on_timeout: Literal["defer", "accept"] = "defer"


@dataclass(frozen=True, slots=True)
class Lookup:
    """The answer to one query; no ``records`` with ``nxdomain`` false means "no such type"."""

    name: str
    rdtype: str
    records: tuple[dns.rdata.Rdata, ...] = ()
    nxdomain: bool = False
    failure: str | None = None


class Resolver:
    """Queries the configured name servers; answers are shared until their TTL runs out."""

    def __init__(self, config: DnsConfig, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.config = config
        self._clock = clock
        self._cache: dict[tuple[str, str], tuple[float, Lookup]] = {}
        self._resolver: dns.asyncresolver.Resolver | None = None

    async def query(self, name: str, rdtype: str) -> Lookup:
        """The ``rdtype`` records of ``name`` (``"MX"``, ``"A"``, ``"AAAA"``)."""
        key = (name.lower().rstrip("."), rdtype)
        now = self._clock()
        cached = self._cache.get(key)
        if cached is not None and cached[0] > now:
            return cached[1]
        lookup, ttl = await self._ask(*key)
        if lookup.failure is None:
            if len(self._cache) >= _MAX_ENTRIES:
                self._cache = {k: v for k, v in self._cache.items() if v[0] > now}
            self._cache[key] = (now + min(ttl, _MAX_TTL), lookup)
        return lookup

    def _dnspython(self) -> dns.asyncresolver.Resolver:
        if self._resolver is None:
            servers = self.config.nameservers
            resolver = dns.asyncresolver.Resolver(configure=not servers)
            if servers:
                resolver.nameservers = list(servers)
            resolver.port = self.config.port
            resolver.timeout = resolver.lifetime = self.config.timeout
            self._resolver = resolver
        return self._resolver

    async def _ask(self, name: str, rdtype: str) -> tuple[Lookup, float]:
        try:
            answer = await self._dnspython().resolve(
                f"{name}.", rdtype, raise_on_no_answer=False, search=False
            )
        except dns.resolver.NXDOMAIN as exc:
            return Lookup(name, rdtype, nxdomain=True), _negative_ttl(exc)
        except dns.exception.Timeout:
            return Lookup(name, rdtype, failure="timed out"), 0.0
        except dns.exception.DNSException as exc:  # SERVFAIL everywhere, no configuration …
            return Lookup(name, rdtype, failure=str(exc) or type(exc).__name__), 0.0
        records = tuple(answer.rrset) if answer.rrset is not None else ()
        return Lookup(name, rdtype, records), max(0.0, answer.expiration - time.time())


def _negative_ttl(exc: dns.resolver.NXDOMAIN) -> float:
    """RFC 2308: a negative answer lives for the smaller of the SOA's TTL and minimum."""
    for response in exc.kwargs.get("responses", {}).values():
        for rrset in response.authority:
            if rrset.rdtype == dns.rdatatype.SOA:
                return float(min(rrset.ttl, rrset[0].minimum))
    return _NEGATIVE_TTL
