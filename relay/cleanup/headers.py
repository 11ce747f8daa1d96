"""Header rewriting: Bcc removal, From, Reply-To, sender alignment and the subject prefix."""

from __future__ import annotations

import re

from relay.cleanup.addresses import qualify, qualify_items
from relay.cleanup.directory import Directory
from relay.cleanup.fields import Field, find, make_field, replace, text_of
from relay.cleanup.mailbox import (
    Mailbox,
    address_key,
    display_name,
    format_address_list,
    is_address,
    read_addresses,
    write_addresses,
)
from relay.cleanup.options import CleanupOptions
from relay.cleanup.result import Rejection
from relay.cleanup.rfc2047 import decode_unstructured, encode_unstructured
from relay.model import TraceEntry

__all__ = [
    "add_missing_from",
    "add_subject_prefix",
    "align_sender",
    "from_refusal",
    "rewrite_from",
    "rewrite_reply_to",
    "strip_bcc",
]

Fields = tuple[Field, ...]
Trace = tuple[TraceEntry, ...]

_ATEXT = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
_ADDR = rf"{_ATEXT}(?:\.{_ATEXT})*@{_LABEL}(?:\.{_LABEL})*"
#: ``addr@domain`` or ``Plain Name <addr@domain>``: what trackers write; clean by grammar,
#: so the full parse (about 150 us) is only for anything else.
_PLAIN_FROM = re.compile(rf"(?P<bare>{_ADDR})|(?:{_ATEXT}(?: {_ATEXT})* )?<(?P<angle>{_ADDR})>")
_REPLY_MARK = re.compile(r"[ \t]*(?:re|fwd?|fw|aw|wg|sv|vs|antw|tr)(?:\[\d+\])?[ \t]*:[ \t]*", re.I)


def strip_bcc(fields: Fields) -> tuple[Fields, Trace]:
    """Remove every ``Bcc`` and ``Resent-Bcc`` field (always on, as in Postfix cleanup)."""
    trace: Trace = ()
    for name in ("Bcc", "Resent-Bcc"):
        if find(fields, name):
            fields = replace(fields, name, None)
            trace += (TraceEntry("bcc", f"{name} header removed"),)
    return fields, trace


def rewrite_from(
    fields: Fields, options: CleanupOptions, directory: Directory
) -> tuple[Fields, Trace]:
    """From: qualify a bare name, then apply ``smtp_from`` and ``smtp_from_name``."""
    items = read_addresses(fields, "From")
    trace: Trace = ()
    if items is None or len(items) > 1 or (items and not isinstance(items[0], Mailbox)):
        if not options.smtp_from:
            note = "From: left unchanged: not a single clean mailbox"
            wanted = "smtp_from_name" if options.smtp_from_name else "smtp_default_domain"
            active = options.smtp_from_name or options.smtp_default_domain
            return fields, ((TraceEntry(wanted, note),) if active else ())
        old = Mailbox(display_name(fields, "From"), "")
    else:
        items, trace = qualify_items(items, "From", options, directory)
        first = items[0] if items else None
        old = first if isinstance(first, Mailbox) else Mailbox("", "")
    new = old
    address = qualify(options.smtp_from, options, directory)[0] if options.smtp_from else ""
    if address and address != old.address:
        new = Mailbox(new.display, address)
        trace += (TraceEntry("smtp_from", f"From: address {old.address or '(none)'} -> {address}"),)
    if options.smtp_from_name and options.smtp_from_name != old.display:
        new = Mailbox(options.smtp_from_name, new.address)
        trace += (TraceEntry("smtp_from_name", f"From: name {old.display!r} -> {new.display!r}"),)
    if not new.address or not trace:
        return fields, ()
    return write_addresses(fields, "From", (new,)), trace


def add_missing_from(fields: Fields, sender: str) -> tuple[Fields, Trace]:
    """Give a message without ``From:`` one made of the envelope sender (as Postfix's
    ``always_add_missing_headers``): providers such as Gmail refuse mail without it."""
    if find(fields, "From") or not sender:
        return fields, ()
    note = TraceEntry("From", f"From: <{sender}> added from the envelope sender")
    return replace(fields, "From", make_field("From", f"<{sender}>")), (note,)


def from_refusal(fields: Fields) -> Rejection | None:
    """Why providers would refuse this message's ``From:`` (RFC 5322 3.6.2: exactly one
    field of mailboxes with a domain), as a ``550 5.6.0`` rejection; None when it is fine."""
    found = find(fields, "From")
    plain = _PLAIN_FROM.fullmatch(found[0].value.decode("latin-1")) if len(found) == 1 else None
    if plain and is_address(plain["bare"] or plain["angle"]):
        return None
    items = read_addresses(fields, "From")
    if not found:
        why = "no From: header field, and a null sender to make one from"
    elif len(found) > 1:
        why = f"{len(found)} From: header fields; there must be exactly one"
    elif not items or not all(isinstance(item, Mailbox) and "@" in item.address for item in items):
        text = (text_of(found[0]) or "(not UTF-8)").strip()[:80]
        why = f"From: {text!r} is not a list of addresses with a domain"
    else:
        return None
    return Rejection(550, "5.6.0", f"Message refused: {why} (set smtp_from to rewrite it)")


def rewrite_reply_to(
    fields: Fields, options: CleanupOptions, directory: Directory
) -> tuple[Fields, Trace]:
    """Reply-To: qualify bare names, or replace it with ``smtp_replyto``."""
    items = read_addresses(fields, "Reply-To")
    if options.smtp_replyto:
        wanted = (Mailbox("", qualify(options.smtp_replyto, options, directory)[0]),)
        if items == wanted:
            return fields, ()
        change = TraceEntry("smtp_replyto", f"Reply-To: set to {wanted[0].address}")
        return write_addresses(fields, "Reply-To", wanted), (change,)
    if not items:
        return fields, ()
    new, trace = qualify_items(items, "Reply-To", options, directory)
    return (write_addresses(fields, "Reply-To", new), trace) if trace else (fields, ())


def align_sender(
    fields: Fields, options: CleanupOptions, account: str | None
) -> tuple[Fields, Trace]:
    """From becomes the upstream ``account`` (display name kept, "name via project"); the
    author moves to Reply-To (unless ``smtp_replyto`` is set) and ``X-Original-From``.
    """
    if not options.align_sender:
        return fields, ()
    if not account:
        return fields, (TraceEntry("align_sender", "From left unchanged: no upstream account"),)
    found = find(fields, "From")
    items = read_addresses(fields, "From")
    author = items[0] if items and len(items) == 1 and isinstance(items[0], Mailbox) else None
    if author and address_key(author.address) == address_key(account):
        return fields, ()
    name = (author.display or author.address) if author else display_name(fields, "From")
    project = _project(fields)
    display = f"{name} via {project}" if project and name and project != name else name or project
    fields = write_addresses(fields, "From", (Mailbox(display, account),))
    trace: Trace = (
        TraceEntry("align_sender", f"From: -> {format_address_list((Mailbox(display, account),))}"),
    )
    if found:
        original = b"X-Original-From:" + found[0].raw.partition(b":")[2].rstrip(b"\r\n")
        original += b"\r\n"
        field = Field(name="X-Original-From", raw=original)
        fields = replace(fields, "X-Original-From", field, after="From")
        trace += (TraceEntry("align_sender", "X-Original-From: the original From"),)
    if author and not options.smtp_replyto:
        fields = write_addresses(fields, "Reply-To", (author,))
        trace += (TraceEntry("align_sender", f"Reply-To: -> {author.address} (the author)"),)
    elif not author:
        trace += (
            TraceEntry("align_sender", "Reply-To left unchanged: From was not a clean mailbox"),
        )
    return fields, trace


def _project(fields: Fields) -> str:
    found = find(fields, "X-Trac-Project")
    text = text_of(found[0]) if found else None
    return (decode_unstructured(text) or "") if text else ""


def add_subject_prefix(fields: Fields, options: CleanupOptions) -> tuple[Fields, Trace]:
    """Put ``smtp_subject_prefix`` before the subject once, after any ``Re:``/``Fwd:``."""
    prefix = options.smtp_subject_prefix
    if not prefix:
        return fields, ()
    found = find(fields, "Subject")
    text = text_of(found[0]) if len(found) == 1 else "" if not found else None
    subject = decode_unstructured(text) if text else text
    if subject is None:
        note = "Subject: left unchanged: repeated, not UTF-8 or badly encoded"
        return fields, (TraceEntry("smtp_subject_prefix", note),)
    new = _prefixed(subject, prefix)
    if new is None:
        return fields, ()
    field = make_field("Subject", encode_unstructured(new))
    return replace(fields, "Subject", field), (
        TraceEntry("smtp_subject_prefix", f"Subject: {new}"),
    )


def _prefixed(subject: str, prefix: str) -> str | None:
    """``subject`` with ``prefix`` after its reply marks; ``None`` if the prefix is there."""
    position = 0
    while True:
        if subject[position:].startswith(prefix):
            return None
        mark = _REPLY_MARK.match(subject, position)
        if not mark:
            break
        position = mark.end()
    head, rest = subject[:position], subject[position:]
    return f"{head}{prefix} {rest}" if rest else f"{head}{prefix}"
