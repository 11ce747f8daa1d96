"""Per-recipient Gmail filter simulation (pure): what each recipient's filters would do.

Each recipient is matched against the configured filter sets (shell-style patterns, case
insensitive; the first matching set applies). The result per recipient is the state Gmail
would show (labels, archived, read, starred, trashed ...). With ``enforce: [delete]`` a
recipient whose filters would delete the message is dropped from the envelope.
"""

from __future__ import annotations

import datetime as dt
import fnmatch
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

from relay.gmail import MessageView, RuleSet, apply_filters
from relay.model import Envelope, TraceEntry

__all__ = ["FilterSet", "Simulation", "simulate"]


@dataclass(frozen=True, slots=True)
class FilterSet:
    """The filters of the recipients matching ``patterns``; ``name`` is the rules file."""

    patterns: tuple[str, ...]
    name: str
    ruleset: RuleSet

    def applies_to(self, recipient: str) -> bool:
        """True if ``recipient`` matches one of the patterns."""
        address = recipient.lower()
        return any(fnmatch.fnmatchcase(address, pattern.lower()) for pattern in self.patterns)


@dataclass(frozen=True, slots=True)
class Simulation:
    """Filter results per recipient (JSON-able), the envelope after enforcement, and notes."""

    results: Mapping[str, dict[str, object]]
    envelope: Envelope
    trace: tuple[TraceEntry, ...] = ()


def simulate(
    envelope: Envelope,
    message: bytes,
    sets: Sequence[FilterSet],
    *,
    timezone: str,
    enforce_delete: bool = False,
) -> Simulation:
    """Apply each recipient's filter set to ``message`` as at arrival."""
    chosen = {
        rcpt: next((s for s in sets if s.applies_to(rcpt)), None) for rcpt in envelope.recipients
    }
    if not any(chosen.values()):
        return Simulation({}, envelope)
    arrival = dt.datetime.fromtimestamp(envelope.received_at, dt.UTC)
    view = MessageView.from_bytes(
        message, received_at=arrival, envelope_recipients=envelope.recipients
    )
    results: dict[str, dict[str, object]] = {}
    trace: list[TraceEntry] = []
    if view.unread is not None:
        trace.append(TraceEntry("filters", f"matched on the header only: {view.unread}"))
    dropped: set[str] = set()
    for rcpt, filter_set in chosen.items():
        if filter_set is None:
            continue
        result = apply_filters(
            filter_set.ruleset, replace(view, user_addresses=(rcpt,)), timezone=timezone
        )
        results[rcpt] = {"rules": filter_set.name, **result.to_dict()}
        if enforce_delete and result.trashed:
            names = ", ".join(name or f"#{index + 1}" for index, name in result.matched)
            dropped.add(rcpt)
            trace.append(
                TraceEntry(
                    "filters.enforce", f"{rcpt} dropped: deleted by {filter_set.name} ({names})"
                )
            )
    kept = tuple(rcpt for rcpt in envelope.recipients if rcpt not in dropped)
    return Simulation(results, replace(envelope, recipients=kept), tuple(trace))
