"""The cleanup stage in order: each step, and the option that turns it on.

=====================================  ==============================================
step                                   turned on by
=====================================  ==============================================
envelope recipients expanded           aliases file, ``users``, ``trac_env``
bare names get a domain                ``smtp_default_domain`` (``use_short_addr`` wins)
recipients dropped                     ``ignore_domains``, ``admit_domains``
recipients added                       ``smtp_always_cc``, ``smtp_always_bcc``
envelope sender                        ``smtp_from``, ``smtp_default_domain``, ``align_sender``
bare LF line ends become CRLF          always
Bcc and Resent-Bcc removed             always
To/Cc qualified, filtered, shown/hid   as above, ``remove_leaked_bcc``, ``use_public_cc``
From, Reply-To                         ``smtp_from``, ``smtp_from_name``, ``smtp_replyto``
From aligned with the account          ``align_sender``
subject prefix                         ``smtp_subject_prefix``
List-Id, List-Unsubscribe(-Post),      ``list_id``, ``list_unsubscribe``,
Auto-Submitted, Precedence             ``list_unsubscribe_post``
transfer encodings                     ``mime_encoding`` (lines over 998 octets: always)
=====================================  ==============================================

The header section ends at the first line that is not a header field, as in Postfix
cleanup: an empty line is put before that line, so every later reader agrees where the
body starts, and the fields before it (a Bcc among them) are rewritten as usual. A body
whose MIME structure cannot be followed is passed on as it came. Either way the result's
``unreadable`` says what was wrong, for the caller to log.
"""

from __future__ import annotations

from dataclasses import replace

from relay.cleanup.addresses import (
    check_recipient,
    qualify,
    resolve_extras,
    rewrite_recipients,
    rewrite_visible,
)
from relay.cleanup.directory import Directory
from relay.cleanup.encoding import transcode
from relay.cleanup.fields import MalformedMessage, join_message, normalise_line_ends, read_header
from relay.cleanup.headers import (
    add_missing_from,
    add_subject_prefix,
    align_sender,
    from_refusal,
    rewrite_from,
    rewrite_reply_to,
    strip_bcc,
)
from relay.cleanup.listheaders import add_list_headers
from relay.cleanup.options import CleanupOptions
from relay.cleanup.result import CleanupResult, Rejection
from relay.model import Envelope, TraceEntry

__all__ = ["check_recipient", "run"]

Trace = tuple[TraceEntry, ...]


def run(
    envelope: Envelope,
    message: bytes,
    options: CleanupOptions,
    directory: Directory,
    *,
    account: str | None = None,
    relaying: bool = False,
) -> CleanupResult:
    """Apply every cleanup step to one message and return the result.

    Pure: no I/O, no clock. ``account`` is the upstream login, used by ``align_sender``.
    ``relaying``: the message goes to an upstream, so it must have the one ``From:`` that
    providers demand (added from the envelope sender when missing, else refused); capture
    mode keeps any message as it came. When no option applies, the message bytes come back
    as they were given.
    """
    extras = resolve_extras(options, directory)
    received = envelope.recipients
    recipients, trace = rewrite_recipients(envelope.recipients, options, directory, extras)
    sender, more = _rewrite_sender(envelope.sender, options, directory, account)
    trace += more
    envelope = replace(envelope, sender=sender, recipients=recipients)
    if not recipients:
        text = "no deliverable recipient left after cleanup"
        return CleanupResult(envelope, message, trace, Rejection(550, "5.1.1", text))
    normalised = normalise_line_ends(message)
    if normalised != message:
        trace += (TraceEntry("line ends", "bare LF line ends turned into CRLF"),)
    fields, separator, body = read_header(normalised)
    original, problems = fields, []
    if body and not separator:
        line = body.split(b"\r\n", 1)[0][:40]
        problems.append(f"header section ends at a line that is not a header field: {line!r}")
        trace += (TraceEntry("cleanup", f"{problems[0]}; an empty line put before it"),)
        separator = b"\r\n"
    # Address headers are only parsed when an option can change them (the common case of
    # a relay with no [notification] options must stay cheap).
    names_change = bool(options.smtp_default_domain or directory.users)
    visible_change = (
        names_change
        or recipients != received
        or any(
            (
                options.use_public_cc is not None,
                extras.cc,
                extras.bcc,
                options.ignore_domains,
                options.admit_domains,
            )
        )
    )
    steps = (
        (strip_bcc, (), True),
        (rewrite_visible, (recipients, options, directory, extras), visible_change),
        (
            rewrite_from,
            (options, directory),
            names_change or options.smtp_from or options.smtp_from_name,
        ),
        (rewrite_reply_to, (options, directory), names_change or options.smtp_replyto),
        (align_sender, (options, account), options.align_sender),
        (add_subject_prefix, (options,), options.smtp_subject_prefix),
        (add_list_headers, (options,), options.list_id or options.list_unsubscribe),
        (add_missing_from, (envelope.sender,), relaying),
    )
    for step, arguments, wanted in steps:
        if wanted:
            fields, more = step(fields, *arguments)
            trace += more
    refusal = from_refusal(fields) if relaying else None
    if refusal is not None:
        return CleanupResult(envelope, message, trace, refusal)
    same = fields == original and not problems
    rewritten = normalised if same else join_message(fields, separator, body)
    try:
        rewritten, more = transcode(rewritten, options.mime_encoding)
    except MalformedMessage as exc:
        problems.append(f"body left as it is: {exc}")
        more = (TraceEntry("mime_encoding", problems[-1]),)
    trace += more
    return CleanupResult(envelope, rewritten, trace, unreadable="; ".join(problems) or None)


def _rewrite_sender(
    sender: str, options: CleanupOptions, directory: Directory, account: str | None
) -> tuple[str, Trace]:
    """The envelope sender: ``smtp_from``, a domain for a bare name, the upstream account."""
    trace: Trace = ()
    if options.align_sender and account:
        if sender != account:
            trace = (TraceEntry("align_sender", f"MAIL FROM {sender or '<>'} -> {account}"),)
        return account, trace
    if options.smtp_from:
        wanted, _ = qualify(options.smtp_from, options, directory)
        if wanted != sender:
            trace = (TraceEntry("smtp_from", f"MAIL FROM {sender or '<>'} -> {wanted}"),)
        return wanted, trace
    if sender:
        wanted, more = qualify(sender, options, directory)
        return wanted, tuple(TraceEntry(t.option, f"MAIL FROM {t.change}") for t in more)
    return sender, ()
