"""Helpers shared by the cleanup tests: the Trac fixtures and message inspection."""

from __future__ import annotations

import email
import json
from dataclasses import dataclass
from email import policy
from email.message import Message
from pathlib import Path

from relay.model import Envelope

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "trac"


@dataclass(frozen=True)
class TracMessage:
    """One captured Trac message: where it came from, its envelope and its DATA."""

    name: str
    envelope: Envelope
    data: bytes


def trac_messages() -> list[TracMessage]:
    """Every fixture under tests/fixtures/trac, sorted by folder and number."""
    out = []
    for eml in sorted(FIXTURES.glob("*/*.eml")):
        meta = json.loads(eml.with_suffix(".json").read_text())
        envelope = Envelope(
            sender=meta["mail_from"],
            recipients=tuple(meta["rcpt_tos"]),
            mail_options=tuple(meta["mail_options"]),
        )
        out.append(TracMessage(f"{eml.parent.name}/{eml.stem}", envelope, eml.read_bytes()))
    return out


def trac_message(name: str) -> TracMessage:
    """The fixture called ``folder/number``."""
    return next(message for message in trac_messages() if message.name == name)


def parsed(data: bytes, *, strict: bool = False) -> Message:
    """The message as the stdlib reads it (``policy.strict`` raises on any defect)."""
    return email.message_from_bytes(data, policy=policy.strict if strict else policy.default)


def leaves(message: Message) -> list[Message]:
    """Every non-multipart part, in order."""
    return [part for part in message.walk() if not part.is_multipart()]


def contents(data: bytes) -> list[bytes]:
    """The decoded content of every leaf part, byte for byte."""
    return [part.get_payload(decode=True) or b"" for part in leaves(parsed(data))]


def header_names(data: bytes) -> list[str]:
    """The top-level header names, in order."""
    return list(parsed(data).keys())


def lines(data: bytes) -> list[bytes]:
    """The CRLF-terminated lines of ``data`` (checks that no bare LF is left)."""
    assert b"\n" not in data.replace(b"\r\n", b""), "bare LF in output"
    return data.split(b"\r\n")
