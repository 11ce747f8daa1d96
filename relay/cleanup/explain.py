"""Render a cleanup result as text: the envelope, the headers, the MIME outline and the trace."""

from __future__ import annotations

from relay.cleanup.encoding import decode_body
from relay.cleanup.fields import MalformedMessage
from relay.cleanup.mime import Entity, parse
from relay.cleanup.result import CleanupResult

__all__ = ["explain"]


def explain(result: CleanupResult) -> str:
    """The text ``notify-relay rewrite`` prints: what would be sent, and why it changed."""
    envelope = result.envelope
    lines = ["Envelope:", f"  MAIL FROM:<{envelope.sender}>"]
    lines += [f"  RCPT TO:<{recipient}>" for recipient in envelope.recipients]
    if result.rejection:
        lines += ["", "Rejected:", f"  {result.rejection.reply()}"]
    try:
        entity = parse(result.message)
    except MalformedMessage as exc:
        lines += ["", f"Message: cannot be taken apart ({exc}); passed on unchanged"]
    else:
        lines += ["", "Headers:"]
        lines += [
            "  " + field.raw.decode("utf-8", "replace").rstrip("\r\n").replace("\r\n", "\n  ")
            for field in entity.fields
        ]
        lines += ["", "MIME:", *_outline(entity, "  ")]
    lines += ["", "Trace:"]
    lines += [f"  [{entry.option}] {entry.change}" for entry in result.trace] or ["  (no change)"]
    return "\n".join(lines) + "\n"


def _outline(entity: Entity, indent: str) -> list[str]:
    """One line per part: type, charset, transfer encoding and decoded size."""
    if entity.parts:
        head = f"{indent}{entity.content_type}"
        return [head, *(line for part in entity.parts for line in _outline(part, indent + "  "))]
    content = decode_body(entity)
    size = f"{len(content)} bytes" if content is not None else "undecodable"
    charset = f"; charset={entity.charset}" if entity.charset else ""
    return [f"{indent}{entity.content_type}{charset}, {entity.transfer_encoding}, {size}"]
