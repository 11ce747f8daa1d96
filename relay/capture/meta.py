"""What a captured message's ``meta/<queue id>.json`` holds, as a frozen value.

This value is what travels from the file to every reader (the index entry, the message
view of the API and ``mail show``, the timeline, a release); none of them sees the JSON.
The file form carries a ``version`` (:data:`META_VERSION`); files written before it had
one read as version 0, which has the same fields (a field missing from an older file takes
its default). A newer version, or a field of the wrong type, raises ``ValueError``: it is
refused, not read best-effort, since a newer writer may have changed what a field means
and a release must not go out to recipients guessed from it. The store adds the file's
path to that error and the index leaves such a message out with a log line; a message
with no metadata file (or one that is not JSON) reads as None.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from typing import Any

from relay.record import Record

__all__ = ["META_VERSION", "CaptureMeta"]

#: The version written; every version up to it can be read.
META_VERSION = 1

Json = Mapping[str, Any]
#: Fields left out of the file when empty, as before the format had a version.
_OPTIONAL = frozenset({"relay_refusals", "original_kept", "releases"})


@dataclass(frozen=True, slots=True, kw_only=True)
class CaptureMeta:
    """The envelope, cleanup trace, filter results and delivery history of one message.

    ``timeline``: delivery attempts (relay mode); ``releases``: manual releases;
    ``relay_refusals``: what relay mode would have refused (capture mode);
    ``original_kept``: the bytes as received are kept beside it.
    """

    id: str
    sender: str
    recipients: tuple[str, ...]
    mail_options: tuple[str, ...] = ()
    received_at: float = 0.0
    peer: str = ""
    helo: str = ""
    trace: tuple[tuple[str, str], ...] = ()
    filters: Json = field(default_factory=dict)
    timeline: tuple[Json, ...] = ()
    captured_at: float = 0.0
    relay_refusals: tuple[Json, ...] = ()
    original_kept: bool = False
    releases: tuple[Json, ...] = ()

    @classmethod
    def of(cls, record: Record, *, timeline: Sequence[Json], captured_at: float) -> CaptureMeta:
        """The metadata of ``record`` as captured at ``captured_at``."""
        envelope = record.envelope
        return cls(
            id=record.queue_id,
            sender=envelope.sender,
            recipients=envelope.recipients,
            mail_options=envelope.mail_options,
            received_at=envelope.received_at,
            peer=envelope.peer,
            helo=envelope.helo,
            trace=tuple((entry.option, entry.change) for entry in record.trace),
            filters=record.filters,
            timeline=tuple(timeline),
            captured_at=captured_at,
            relay_refusals=tuple(refusal.as_dict() for refusal in record.refusals),
            original_kept=record.original is not None,
        )

    @classmethod
    def blank(cls, queue_id: str) -> CaptureMeta:
        """What is known of a message ``queue_id`` without metadata: no envelope, no history."""
        return cls(id=queue_id, sender="", recipients=())

    def released(self, attempts: Sequence[Json]) -> CaptureMeta:
        """This metadata with manual release ``attempts`` added."""
        return replace(self, releases=(*self.releases, *attempts))

    def as_dict(self) -> dict[str, Any]:
        """The file's JSON object without its version (lists for tuples; empty optional
        fields left out, as files were before the format had a version)."""
        data: dict[str, Any] = {}
        for item in fields(self):
            value = getattr(self, item.name)
            if item.name in _OPTIONAL and not value:
                continue
            if item.name == "trace":
                value = [list(pair) for pair in value]
            data[item.name] = list(value) if isinstance(value, tuple) else value
        return data

    def encode(self) -> bytes:
        """The file form, with its version."""
        return json.dumps({"version": META_VERSION, **self.as_dict()}).encode()

    @classmethod
    def decode(cls, data: bytes) -> CaptureMeta:
        """Read a file of any version up to :data:`META_VERSION`; ``ValueError`` if not ours."""
        found = json.loads(data)
        if not isinstance(found, dict):
            raise ValueError("capture metadata: expected a JSON object")
        version = found.pop("version", 0)
        if not isinstance(version, int) or not 0 <= version <= META_VERSION:
            raise ValueError(f"capture metadata version {version} is newer than this reads")
        values: dict[str, Any] = {}
        for item in fields(cls):
            if item.name in found:
                values[item.name] = _checked(item.name, found[item.name])
        try:
            return cls(**values)
        except TypeError as exc:  # a required field missing
            raise ValueError(f"capture metadata: {exc}") from None


_TEXT = frozenset({"id", "sender", "peer", "helo"})
_TEXTS = frozenset({"recipients", "mail_options"})
_RECORDS = frozenset({"timeline", "relay_refusals", "releases"})


def _checked(name: str, value: Any) -> Any:
    """``value`` of field ``name`` in its Python form; ``ValueError`` for a wrong type."""
    if name in _TEXT and isinstance(value, str):
        return value
    if name in _TEXTS and isinstance(value, list) and all(isinstance(v, str) for v in value):
        return tuple(value)
    if name in ("received_at", "captured_at") and isinstance(value, int | float):
        return float(value)
    if name == "trace" and isinstance(value, list) and all(_pair(v) for v in value):
        return tuple((str(option), str(change)) for option, change in value)
    if name == "filters" and isinstance(value, dict):
        return value
    if name in _RECORDS and isinstance(value, list) and all(isinstance(v, dict) for v in value):
        return tuple(value)
    if name == "original_kept" and isinstance(value, bool):
        return value
    raise ValueError(f"capture metadata: {name}: unexpected {type(value).__name__}")


def _pair(value: Any) -> bool:
    return isinstance(value, list) and len(value) == 2
