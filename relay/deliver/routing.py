"""Which upstreams a recipient's mail goes through, in fail-over order (pure).

An upstream with ``senders`` or ``recipients`` patterns (shell-style, case-insensitive) is
a route: it takes the mail that matches (every pattern list it has must match). Routes that
match win, in config order; mail no route matches goes through the upstreams without
patterns, in config order. Fail-over only ever moves along one such chain.
"""

from __future__ import annotations

from collections.abc import Sequence
from fnmatch import fnmatchcase

from relay.deliver.options import UpstreamConfig

__all__ = ["chain", "split", "via_mx"]


def _matches(patterns: tuple[str, ...], address: str) -> bool:
    return any(fnmatchcase(address.lower(), pattern.lower()) for pattern in patterns)


def _takes(upstream: UpstreamConfig, sender: str, recipient: str) -> bool:
    return (not upstream.senders or _matches(upstream.senders, sender)) and (
        not upstream.recipients or _matches(upstream.recipients, recipient)
    )


def chain(
    upstreams: Sequence[UpstreamConfig], sender: str, recipient: str
) -> tuple[UpstreamConfig, ...]:
    """The upstreams to try for ``recipient`` of mail from ``sender``, in order."""
    routes = [u for u in upstreams if (u.senders or u.recipients) and _takes(u, sender, recipient)]
    return tuple(routes or [u for u in upstreams if not (u.senders or u.recipients)])


def split(
    upstreams: Sequence[UpstreamConfig], sender: str, recipients: Sequence[str]
) -> list[tuple[tuple[UpstreamConfig, ...], tuple[str, ...]]]:
    """Group ``recipients`` by their chain, keeping the order of first appearance."""
    groups: dict[tuple[UpstreamConfig, ...], list[str]] = {}
    for recipient in recipients:
        groups.setdefault(chain(upstreams, sender, recipient), []).append(recipient)
    return [(route, tuple(group)) for route, group in groups.items()]


def via_mx(upstreams: Sequence[UpstreamConfig], sender: str, recipient: str) -> bool:
    """True when ``recipient``'s mail may go to its domain's MX hosts."""
    return any(upstream.mx for upstream in chain(upstreams, sender, recipient))
