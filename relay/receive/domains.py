"""The recipient-domain check at RCPT time: refuse domains that cannot take mail.

A typo such as ``example.cmo`` is refused with ``550 5.1.2`` while the tracker is still on
the line, instead of sitting in the queue for days; a null MX (RFC 7505) gets ``556
5.1.10``. Only a definite DNS answer refuses: when DNS does not answer, RCPT gets ``451
4.4.3`` (or is accepted, with ``dns.on_timeout: accept``), never a 5xx.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import partial

from relay.deliver.mx import mail_hosts
from relay.deliver.options import UpstreamConfig
from relay.deliver.routing import via_mx
from relay.resolver import DnsConfig, Resolver

__all__ = ["DomainCheck", "domain_check"]


class DomainCheck:
    """Checks a recipient's domain with ``resolver`` when ``applies(sender, recipient)``."""

    def __init__(
        self, resolver: Resolver, *, applies: Callable[[str, str], bool], accept_on_timeout: bool
    ) -> None:
        self.resolver = resolver
        self.applies = applies
        self.accept_on_timeout = accept_on_timeout

    async def __call__(self, sender: str, recipient: str) -> str | None:
        """The RCPT reply refusing ``recipient``, or None to accept it."""
        domain = recipient.rpartition("@")[2].lower()
        if not domain or domain.startswith("[") or not self.applies(sender, recipient):
            return None  # a bare name (cleanup qualifies it) or an address literal
        hosts = await mail_hosts(self.resolver, domain)
        refusal = hosts.refusal()
        if refusal is None or (hosts.failure is not None and self.accept_on_timeout):
            return None
        return f"{refusal.code} {refusal.text}"


def _everyone(upstreams: Sequence[UpstreamConfig], sender: str, recipient: str) -> bool:
    return True


def domain_check(
    dns: DnsConfig, upstreams: Sequence[UpstreamConfig], resolver: Resolver
) -> DomainCheck | None:
    """The check ``dns`` asks for: on by default for recipients delivered to MX hosts."""
    wanted = dns.check_recipient_domains
    if wanted is False or (wanted is None and not any(u.mx for u in upstreams)):
        return None
    applies = partial(_everyone if wanted else via_mx, upstreams)
    return DomainCheck(resolver, applies=applies, accept_on_timeout=dns.on_timeout == "accept")
