"""Where a recipient domain's mail goes: its MX hosts in RFC 5321 order, or a refusal.

RFC 5321 section 5.1: MX hosts by preference, equal preferences in random order; without
MX records, the domain's own address (the "implicit MX"). RFC 7505: a lone MX record for
"." (a null MX) means the domain takes no mail at all: fail at once, never retry.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

from dns.rdtypes.mxbase import MXBase

from relay.reply import Reply
from relay.resolver import Resolver

__all__ = ["MailHosts", "addresses", "mail_hosts", "order_mx"]


def order_mx(
    records: Sequence[tuple[int, str]], rng: random.Random | None = None
) -> tuple[str, ...]:
    """Host names by preference, shuffled within a preference; the null target "." dropped."""
    shuffled = [(preference, (rng or random).random(), host) for preference, host in records]
    return tuple(host for _, _, host in sorted(shuffled) if host not in ("", "."))


@dataclass(frozen=True, slots=True)
class MailHosts:
    """The hosts to try for ``domain``, in order, or why there are none."""

    domain: str
    hosts: tuple[str, ...] = ()
    null_mx: bool = False
    nxdomain: bool = False
    failure: str | None = None  # DNS gave no answer: try later

    def refusal(self) -> Reply | None:
        """The reply for mail to ``domain`` when there is no host to try, else None."""
        if self.failure is not None:
            return Reply(
                451, f"4.4.3 cannot look up the mail servers of {self.domain}: {self.failure}"
            )
        if self.null_mx:
            return Reply(556, f"5.1.10 {self.domain} accepts no mail (null MX, RFC 7505)")
        if not self.hosts:
            why = "does not exist" if self.nxdomain else "has no mail server (no MX, A or AAAA)"
            return Reply(550, f"5.1.2 recipient domain {self.domain} {why}")
        return None


async def mail_hosts(resolver: Resolver, domain: str) -> MailHosts:
    """The MX hosts of ``domain`` in order; the domain itself if it has only an address."""
    if domain.startswith("["):  # an address literal: that host, no DNS
        return MailHosts(domain, (domain,))
    mx = await resolver.query(domain, "MX")
    if mx.failure is not None or mx.nxdomain:
        return MailHosts(domain, failure=mx.failure, nxdomain=mx.nxdomain)
    if mx.records:
        pairs = [
            (record.preference, record.exchange.to_text(omit_final_dot=True))
            for record in mx.records
            if isinstance(record, MXBase)
        ]
        hosts = order_mx(pairs)
        return MailHosts(domain, hosts, null_mx=not hosts)
    found, failure = await addresses(resolver, domain)
    return MailHosts(domain, (domain,) if found else (), failure=None if found else failure)


async def addresses(resolver: Resolver, host: str) -> tuple[tuple[str, ...], str | None]:
    """The IPv4 then IPv6 addresses of ``host``, and a DNS failure if one got in the way."""
    if host.startswith("[") and host.endswith("]"):  # an address literal
        return (host[1:-1].removeprefix("IPv6:"),), None
    found: list[str] = []
    failure = None
    for rdtype in ("A", "AAAA"):
        lookup = await resolver.query(host, rdtype)
        found += [record.to_text() for record in lookup.records]
        failure = failure or lookup.failure
    return tuple(found), failure
