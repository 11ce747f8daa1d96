"""Messages described in YAML (headers, body, attachments, state...) -> message views."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Mapping, Sequence
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from relay.gmail.errors import RuleFileError
from relay.gmail.view import MessageState, MessageView

__all__ = ["MESSAGE_KEYS", "message_bytes", "parse_instant", "sample_view"]

#: The keys a message description may have (the schema of gmail-cases.yaml, plus ``eml``).
MESSAGE_KEYS = frozenset(
    {
        "headers",
        "body",
        "html",
        "attachments",
        "raw_size",
        "received_at",
        "state",
        "user_addresses",
        "envelope_recipients",
        "eml",
    }
)
# The generated MIME structure decides these; a description's own values are dropped.
_STRUCTURE_HEADERS = frozenset({"content-type", "mime-version", "content-transfer-encoding"})


def sample_view(
    spec: Mapping[str, Any],
    *,
    where: str,
    base: Path = Path(),
    user_addresses: Sequence[str] = (),
) -> MessageView:
    """Build the view of the message ``spec`` describes (``where`` names it in errors).

    ``eml`` is a path (relative to ``base``) to a raw message; otherwise ``headers``,
    ``body``/``html`` and ``attachments`` make one. ``raw_size``, ``received_at``, ``state`` and
    ``user_addresses`` override what the bytes say.
    """
    unknown = set(spec) - MESSAGE_KEYS
    if unknown:
        raise RuleFileError(where, f"unknown message keys: {', '.join(sorted(unknown))}")
    if "eml" in spec:
        try:
            raw = (base / str(spec["eml"])).read_bytes()
        except OSError as exc:
            raise RuleFileError(where, f"cannot read {spec['eml']}: {exc.strerror}") from None
    else:
        raw = message_bytes(spec)
    view = MessageView.from_bytes(
        raw,
        received_at=parse_instant(spec["received_at"], where) if "received_at" in spec else None,
        envelope_recipients=tuple(spec.get("envelope_recipients", ())),
        user_addresses=tuple(spec.get("user_addresses", user_addresses)),
    )
    changes: dict[str, Any] = {}
    if "raw_size" in spec:
        changes["size"] = int(spec["raw_size"])
    if "state" in spec:
        changes["state"] = _state(spec["state"], where)
    return dataclasses.replace(view, **changes) if changes else view


def message_bytes(spec: Mapping[str, Any]) -> bytes:
    """Return RFC 5322 bytes for a description: its headers verbatim, then a MIME body."""
    body = EmailMessage()
    text, html = spec.get("body"), spec.get("html")
    if text is not None and html is not None:
        body.set_content(text)
        body.add_alternative(html, subtype="html")
    elif html is not None:
        body.set_content(html, subtype="html")
    else:
        body.set_content(text or "")
    for attachment in spec.get("attachments", ()):
        maintype, _, subtype = attachment.get("content_type", "application/octet-stream").partition(
            "/"
        )
        body.add_attachment(
            b"\0" * int(attachment.get("size", 0)),
            maintype=maintype,
            subtype=subtype,
            filename=attachment.get("filename"),
            disposition=attachment.get("disposition", "attachment"),
        )
    headers = "".join(
        f"{name}: {value}\r\n"
        for name, value in (spec.get("headers") or {}).items()
        if name.lower() not in _STRUCTURE_HEADERS
    )
    return headers.encode("utf-8") + body.as_bytes()


def parse_instant(value: object, where: str) -> dt.datetime:
    """Return the aware datetime of an ISO 8601 string (or YAML timestamp); naive means UTC."""
    try:
        when = value if isinstance(value, dt.datetime) else dt.datetime.fromisoformat(str(value))
    except ValueError:
        raise RuleFileError(where, f"not an ISO 8601 time: {value!r}") from None
    return when if when.tzinfo else when.replace(tzinfo=dt.UTC)


def _state(spec: Mapping[str, Any], where: str) -> MessageState:
    names = {f.name for f in dataclasses.fields(MessageState)}
    unknown = set(spec) - names
    if unknown:
        raise RuleFileError(where, f"unknown state keys: {', '.join(sorted(unknown))}")
    values = dict(spec)
    if "labels" in values:
        values["labels"] = frozenset(values["labels"])
    return MessageState(**values)
