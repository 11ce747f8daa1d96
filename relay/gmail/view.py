"""The message as the evaluator sees it: decoded, tokenised fields plus state (spec §1)."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from relay.gmail.mime import Attachment, parse_mail
from relay.gmail.words import Text, fold, tokenize

__all__ = ["ADDRESS_FIELDS", "Attachment", "Mailbox", "MessageState", "MessageView"]

#: Address fields of a view, named after their search operators.
ADDRESS_FIELDS = ("from", "to", "cc", "bcc", "replyto", "deliveredto", "list")
_HEADER_OF = {"replyto": "reply-to", "deliveredto": "delivered-to"}
_LIST_ID = re.compile(r"(.*)<([^>]*)>\s*$", re.DOTALL)


@dataclass(frozen=True, slots=True, eq=False)
class Mailbox:
    """One address of an address field: display name, address, and their words."""

    name: Text
    address: Text
    folded: str
    local_size: int

    @classmethod
    def of(cls, field: str, name: str, address: str) -> Mailbox:
        """Build the mailbox ``name <address>`` of field ``field``."""
        local = address.rpartition("@")[0] if "@" in address else address
        return cls(
            Text.of(field, name), Text.of(field, address), fold(address), len(tokenize(local))
        )

    def __str__(self) -> str:
        name, address = self.name.text, self.address.text
        return f"{name} <{address}>" if name and address else name or address


@dataclass(frozen=True, slots=True, kw_only=True)
class MessageState:
    """What state operators (``label: is: in: category: has:userlabels``) read.

    The defaults are the state at arrival: unread, in the inbox, no user labels.
    ``category`` uses the search names (primary, social, promotions, updates, forums...).
    """

    labels: frozenset[str] = frozenset()
    unread: bool = True
    starred: bool = False
    important: bool = False
    category: str | None = None
    in_inbox: bool = True
    trashed: bool = False
    spam: bool = False
    sent: bool = False
    snoozed: bool = False
    muted: bool = False


@dataclass(frozen=True, slots=True, kw_only=True, eq=False)
class MessageView:
    """The normalised fields of one message. Build it with :meth:`from_bytes`.

    ``size`` is the byte length of the raw message; ``received_at`` the arrival time (from
    the argument, else the topmost Received header); ``date`` the Date header. ``unread``
    says why only the header was read (no body words, no attachments); None: all was.
    """

    mailboxes: dict[str, tuple[Mailbox, ...]]
    subject: Text
    body: Text
    attachments: tuple[Attachment, ...]
    filenames: tuple[Text, ...]
    message_id: str
    size: int
    received_at: dt.datetime | None
    date: dt.datetime | None
    user_addresses: tuple[str, ...] = ()
    state: MessageState = field(default_factory=MessageState)
    searchable: tuple[Text, ...] = ()
    unread: str | None = None

    @classmethod
    def from_bytes(
        cls,
        raw: bytes,
        *,
        received_at: dt.datetime | None = None,
        envelope_recipients: Sequence[str] = (),
        user_addresses: Sequence[str] = (),
    ) -> MessageView:
        """Parse RFC 5322 ``raw`` into a view.

        ``envelope_recipients`` (SMTP RCPT TO) not named in To/Cc count as Bcc, and all of them
        as Delivered-To (Gmail adds that header on delivery). ``user_addresses`` mean ``me``.
        """
        mail = parse_mail(raw)
        pairs = {
            name: list(mail.addresses.get(_HEADER_OF.get(name, name), []))
            for name in ADDRESS_FIELDS
        }
        visible = {fold(address) for name in ("to", "cc", "bcc") for _, address in pairs[name]}
        for recipient in envelope_recipients:
            if fold(recipient) not in visible:
                pairs["bcc"].append(("", recipient))
            if fold(recipient) not in {fold(a) for _, a in pairs["deliveredto"]}:
                pairs["deliveredto"].append(("", recipient))
        pairs["list"] = _list_addresses(mail.headers)
        mailboxes = {
            name: tuple(Mailbox.of(name, display, address) for display, address in entries)
            for name, entries in pairs.items()
        }
        subject = Text.of("subject", " ".join(mail.headers.get("subject", [])))
        body = Text.of("body", mail.body)
        filenames = tuple(Text.of("filename", a.filename) for a in mail.attachments if a.filename)
        searchable = [subject, body, *filenames]
        for name in ("from", "to", "cc", "bcc", "list"):
            for mailbox in mailboxes[name]:
                searchable += [mailbox.name, mailbox.address]
        return cls(
            mailboxes=mailboxes,
            subject=subject,
            body=body,
            attachments=mail.attachments,
            filenames=filenames,
            message_id=" ".join(mail.headers.get("message-id", [])).strip().strip("<>").casefold(),
            size=len(raw),
            received_at=received_at or mail.received_at,
            date=mail.date,
            user_addresses=tuple(fold(a) for a in user_addresses),
            searchable=tuple(searchable),
            unread=mail.unread,
        )

    @property
    def arrival(self) -> dt.datetime | None:
        """The time date operators use: arrival, else the Date header, else None."""
        return self.received_at or self.date


def _list_addresses(headers: dict[str, list[str]]) -> list[tuple[str, str]]:
    """Return the list identity: the List-Id (description, id) and the List-Post address."""
    entries = []
    for value in headers.get("list-id", []):
        match = _LIST_ID.match(value)
        name, ident = (match[1].strip().strip('"'), match[2].strip()) if match else ("", value)
        entries.append((name, ident))
    for value in headers.get("list-post", []):
        address = value.strip().strip("<>")
        if address.lower().startswith("mailto:"):
            entries.append(("", address[len("mailto:") :].split("?")[0]))
    return entries
