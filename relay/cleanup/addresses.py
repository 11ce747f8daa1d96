"""Recipients: expansion, default domain and short names, admitted and ignored domains,
always-cc/bcc, and which recipients the To/Cc headers show (use_public_cc).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from relay.cleanup.directory import Directory
from relay.cleanup.fields import Field
from relay.cleanup.mailbox import (
    Group,
    Item,
    Mailbox,
    address_key,
    domain_of,
    is_address,
    is_bare_name,
    mailboxes,
    read_addresses,
    write_addresses,
)
from relay.cleanup.options import CleanupOptions
from relay.cleanup.result import Rejection
from relay.model import TraceEntry

__all__ = [
    "Extras",
    "check_recipient",
    "qualify",
    "qualify_items",
    "resolve",
    "resolve_extras",
    "rewrite_recipients",
    "rewrite_visible",
]

Trace = tuple[TraceEntry, ...]
UNDISCLOSED = Group("undisclosed-recipients", ())


def check_recipient(
    address: str, options: CleanupOptions, directory: Directory
) -> Rejection | None:
    """Decide at RCPT time whether ``address`` can ever be delivered; ``None`` means yes."""
    if not (is_address(address) or is_bare_name(address)):
        return Rejection(553, "5.1.3", f"<{address}> is not a valid address")
    if "@" in address or directory.knows(address):
        return None
    if options.use_short_addr or options.smtp_default_domain:
        return None
    return Rejection(
        550,
        "5.1.3",
        f"<{address}> is a user name, not an address: set notification.smtp_default_domain "
        f"(to send it to {address}@that.domain), notification.use_short_addr (to send it "
        "as it is), or map it in notification.users, notification.trac_env or the aliases file",
    )


def qualify(name: str, options: CleanupOptions, directory: Directory) -> tuple[str, Trace]:
    """Turn a bare user name into an address: the user map, then the default domain.

    Addresses, and bare names under ``use_short_addr`` (which wins, as in Trac), come back
    unchanged.
    """
    if "@" in name:
        return name, ()
    known = directory.user_address(name)
    if known:
        return known, (TraceEntry("users", f"{name} -> {known}"),)
    if options.use_short_addr or not options.smtp_default_domain:
        return name, ()
    address = f"{name}@{options.smtp_default_domain}"
    return address, (TraceEntry("smtp_default_domain", f"{name} -> {address}"),)


def resolve(
    name: str, options: CleanupOptions, directory: Directory
) -> tuple[tuple[str, ...], Trace]:
    """Expand one recipient: aliases first, then :func:`qualify` for each target."""
    targets = directory.expand(name)
    trace: Trace = ()
    if targets is not None:
        trace = (TraceEntry("aliases", f"{name} -> {', '.join(targets)}"),)
    out: list[str] = []
    for target in targets or (name,):
        address, more = qualify(target, options, directory)
        out.append(address)
        trace += more
    return tuple(out), trace


def _drop_reason(address: str, options: CleanupOptions) -> tuple[str, str] | None:
    """Why ``address`` must not be delivered, as (option, reason); ``None`` if it may.

    Bare names are not judged here: :func:`check_recipient` refuses them at RCPT time.
    """
    domain = domain_of(address)
    if domain and domain in options.ignore_domains:
        return "ignore_domains", f"domain {domain} is ignored"
    if (
        options.admit_domains
        and domain
        and "." not in domain
        and domain not in options.admit_domains
    ):
        return "admit_domains", f"domain {domain} has no dot and is not admitted"
    return None


def _resolve_all(
    names: Iterable[str], options: CleanupOptions, directory: Directory, verb: str
) -> tuple[tuple[str, ...], Trace]:
    """Resolve and filter ``names``; the survivors in order, each once (case-insensitive)."""
    out: dict[str, str] = {}
    trace: Trace = ()
    for name in names:
        addresses, more = resolve(name, options, directory)
        trace += more
        for address in addresses:
            reason = _drop_reason(address, options)
            if reason:
                trace += (TraceEntry(reason[0], f"{verb} {address} dropped: {reason[1]}"),)
            elif address_key(address) in out:
                trace += (TraceEntry("dedup", f"{verb} {address} dropped: listed twice"),)
            else:
                out[address_key(address)] = address
    return tuple(out.values()), trace


@dataclass(frozen=True, slots=True, kw_only=True)
class Extras:
    """The resolved ``smtp_always_cc`` and ``smtp_always_bcc`` addresses."""

    cc: tuple[str, ...] = ()
    bcc: tuple[str, ...] = ()

    def bcc_keys(self) -> frozenset[str]:
        """The always-bcc addresses in comparison form."""
        return frozenset(map(address_key, self.bcc))


def resolve_extras(options: CleanupOptions, directory: Directory) -> Extras:
    """Resolve the always-cc and always-bcc lists (names and aliases allowed, as in Trac)."""
    cc, _ = _resolve_all(options.smtp_always_cc, options, directory, "cc")
    bcc, _ = _resolve_all(options.smtp_always_bcc, options, directory, "bcc")
    return Extras(cc=cc, bcc=bcc)


def rewrite_recipients(
    recipients: tuple[str, ...], options: CleanupOptions, directory: Directory, extras: Extras
) -> tuple[tuple[str, ...], Trace]:
    """The envelope recipients after expansion, filtering and always-cc/bcc.

    The list as received comes back untouched unless an option changes it.
    """
    out, trace = _resolve_all(recipients, options, directory, "RCPT")
    if all(entry.option == "dedup" for entry in trace):
        out, trace = recipients, ()  # nothing rewritten: the list stays as the client sent it
    seen = set(map(address_key, out))
    for option, added in (("smtp_always_cc", extras.cc), ("smtp_always_bcc", extras.bcc)):
        for address in added:
            if address_key(address) not in seen:
                seen.add(address_key(address))
                out += (address,)
                trace += (TraceEntry(option, f"RCPT {address} added"),)
    return out, trace


def rewrite_visible(
    fields: tuple[Field, ...],
    recipients: tuple[str, ...],
    options: CleanupOptions,
    directory: Directory,
    extras: Extras,
) -> tuple[tuple[Field, ...], Trace]:
    """Rewrite To and Cc: qualify names, drop filtered, leaked-bcc and hidden recipients,
    show the rest (use_public_cc) and add always-cc.
    """
    to, cc = read_addresses(fields, "To"), read_addresses(fields, "Cc")
    if to is None or cc is None:
        bad = "To" if to is None else "Cc"
        return fields, (TraceEntry("cleanup", f"{bad}: left unchanged: not a clean address list"),)
    new_to, trace = _clean_items(to, "To", options, directory, extras)
    new_cc, more = _clean_items(cc, "Cc", options, directory, extras)
    trace += more
    if options.use_public_cc is False:
        new_to, new_cc, more = _hide(new_to, new_cc, extras)
        trace += more
    shown = {address_key(m.address) for m in mailboxes(new_to + new_cc)}
    for address in extras.cc:
        if address_key(address) not in shown:
            shown.add(address_key(address))
            new_cc += (Mailbox("", address),)
            trace += (TraceEntry("smtp_always_cc", f"Cc: {address} added"),)
    if options.use_public_cc:
        hidden = shown | extras.bcc_keys()
        missing = tuple(Mailbox("", r) for r in recipients if address_key(r) not in hidden)
        new_to, new_cc, more = _show(new_to, new_cc, missing)
        trace += more
    if to and not mailboxes(new_to) and not any(isinstance(item, Group) for item in new_to):
        new_to = (UNDISCLOSED,)
    if new_to != to:
        fields = write_addresses(fields, "To", new_to)
    if new_cc != cc:
        fields = write_addresses(fields, "Cc", new_cc)
    return fields, trace


def qualify_items(
    items: tuple[Item, ...], name: str, options: CleanupOptions, directory: Directory
) -> tuple[tuple[Item, ...], Trace]:
    """:func:`qualify` every mailbox of header ``name`` (the trace names the header)."""
    trace: Trace = ()

    def one(mailbox: Mailbox) -> tuple[Mailbox, ...]:
        nonlocal trace
        address, more = qualify(mailbox.address, options, directory)
        trace += tuple(TraceEntry(t.option, f"{name}: {t.change}") for t in more)
        return (Mailbox(mailbox.display, address),)

    return _map_mailboxes(items, one), trace


def _clean_items(
    items: tuple[Item, ...],
    name: str,
    options: CleanupOptions,
    directory: Directory,
    extras: Extras,
) -> tuple[tuple[Item, ...], Trace]:
    """Qualify bare names; drop ignored, unadmitted and (if configured) leaked-bcc mailboxes."""
    items, trace = qualify_items(items, name, options, directory)
    bcc = extras.bcc_keys() if options.remove_leaked_bcc else frozenset()

    def keep(mailbox: Mailbox) -> tuple[Mailbox, ...]:
        nonlocal trace
        reason = _drop_reason(mailbox.address, options)
        if reason is None and address_key(mailbox.address) in bcc:
            reason = ("remove_leaked_bcc", "an smtp_always_bcc address must not be shown")
        if reason:
            trace += (TraceEntry(reason[0], f"{name}: {mailbox.address} removed: {reason[1]}"),)
            return ()
        return (mailbox,)

    return _map_mailboxes(items, keep), trace


def _map_mailboxes(
    items: tuple[Item, ...], change: Callable[[Mailbox], tuple[Mailbox, ...]]
) -> tuple[Item, ...]:
    out: list[Item] = []
    for item in items:
        if isinstance(item, Group):
            out.append(Group(item.display, tuple(m for old in item.members for m in change(old))))
        else:
            out.extend(change(item))
    return tuple(out)


def _hide(
    to: tuple[Item, ...], cc: tuple[Item, ...], extras: Extras
) -> tuple[tuple[Item, ...], tuple[Item, ...], Trace]:
    """use_public_cc false: To shows nobody, Cc only the always-cc addresses."""
    keep = {address_key(a) for a in extras.cc}
    new_cc = tuple(m for m in mailboxes(cc) if address_key(m.address) in keep)
    hidden = [m.address for m in mailboxes(to + cc) if address_key(m.address) not in keep]
    if not hidden and to in ((), (UNDISCLOSED,)):
        return to, cc, ()
    change = f"To/Cc: {len(hidden)} recipient(s) hidden: {', '.join(hidden) or 'none'}"
    return (UNDISCLOSED,), new_cc, (TraceEntry("use_public_cc", change),)


def _show(
    to: tuple[Item, ...], cc: tuple[Item, ...], missing: tuple[Mailbox, ...]
) -> tuple[tuple[Item, ...], tuple[Item, ...], Trace]:
    """use_public_cc true: recipients not yet shown go to To if it shows nobody, else Cc."""
    if not missing:
        return to, cc, ()
    listed = ", ".join(m.address for m in missing)
    if mailboxes(to):
        return to, cc + missing, (TraceEntry("use_public_cc", f"Cc: {listed} added"),)
    kept = tuple(item for item in to if not (isinstance(item, Group) and not item.members))
    return kept + missing, cc, (TraceEntry("use_public_cc", f"To: {listed} added"),)
