"""Operator actions on queued messages: hold, release, delete, requeue, retry (blocking I/O).

``notify-relay queue`` applies them to the spool itself when no server runs; a running
server applies them through :meth:`~relay.queue.manager.QueueManager.apply`, which never
touches a message while it is being delivered and reschedules it afterwards.
"""

from __future__ import annotations

import enum
import os
from collections.abc import Iterable
from dataclasses import dataclass, replace

from relay.queue.spool import QueueState, Spool
from relay.record import CorruptRecord, UnfinishedRecord

__all__ = ["Action", "ActionRefused", "Report", "apply", "apply_all", "due"]


class Action(enum.Enum):
    """What the operator asks for; the value is the ``queue`` verb."""

    HOLD = "hold"
    RELEASE = "release"
    DELETE = "delete"
    REQUEUE = "requeue"
    RETRY = "retry"


class ActionRefused(Exception):
    """The action does not apply to the message (unknown id, wrong state); says why."""


@dataclass(frozen=True, slots=True)
class Report:
    """One line per message the action changed, and one per message it refused."""

    done: tuple[str, ...] = ()
    refused: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, list[str]]:
        """The report as JSON-able data (the control socket's reply)."""
        return {"done": list(self.done), "refused": list(self.refused)}


_DELIVERABLE = (QueueState.INCOMING, QueueState.DEFERRED)
_APPLIES_TO: dict[Action, tuple[QueueState, ...]] = {
    Action.HOLD: _DELIVERABLE,
    Action.RELEASE: (QueueState.HOLD,),
    Action.DELETE: tuple(QueueState),
    Action.REQUEUE: (QueueState.FAILED,),
    Action.RETRY: _DELIVERABLE,
}


def apply(spool: Spool, action: Action, queue_id: str, now: float) -> str:
    """Apply ``action`` to ``queue_id``; return what happened or raise :class:`ActionRefused`.

    Released, retried and requeued messages are due at ``now``. A requeued message gets
    a fresh arrival time (so its lifetime starts again) and a fresh attempt count; its
    earlier attempts stay in its log.
    """
    where = spool.find(queue_id)
    if where is None or (where is QueueState.INCOMING and _unwritten(spool, queue_id)):
        raise ActionRefused(f"{queue_id}: no such message in the queue")
    allowed = _APPLIES_TO[action]
    if where not in allowed:
        states = " or ".join(state.value for state in allowed)
        raise ActionRefused(f"{queue_id}: it is {where.value}; {action.value} takes {states} mail")
    try:
        return _apply(spool, action, queue_id, where, now)
    except (CorruptRecord, OSError) as exc:
        raise ActionRefused(f"{queue_id}: {exc}") from None


def _unwritten(spool: Spool, queue_id: str) -> bool:
    """Whether ``queue_id`` in ``incoming/`` is a reserved file, empty or being written (not
    a message: moving or removing it could take one answered 250 a moment later)."""
    try:
        spool.read(queue_id, QueueState.INCOMING)
    except UnfinishedRecord:
        return True
    except (CorruptRecord, OSError):
        return False
    return False


def _apply(spool: Spool, action: Action, queue_id: str, where: QueueState, now: float) -> str:
    if action is Action.DELETE:
        spool.remove(queue_id, where)
        return f"{queue_id}: deleted (was {where.value})"
    if action is Action.HOLD:
        spool.move(queue_id, where, QueueState.HOLD)
        return f"{queue_id}: held"
    state = replace(spool.read_state(queue_id), next_attempt=now)
    if action is Action.REQUEUE:
        record = spool.read(queue_id, where)
        state = replace(state, attempts=0, failed=(), reason="requeued")
        spool.write_state(queue_id, state)
        spool.accept(replace(record, envelope=replace(record.envelope, received_at=now)))
        os.unlink(spool.path(queue_id, where))  # after the new copy is durable: never a loss
        spool.sync([where])
        return f"{queue_id}: requeued for {len(state.pending(record.envelope))} recipient(s)"
    spool.write_state(queue_id, state)
    if action is Action.RELEASE:
        spool.move(queue_id, where, QueueState.DEFERRED if state.attempts else QueueState.INCOMING)
        return f"{queue_id}: released"
    return f"{queue_id}: due now"


def due(spool: Spool, queue_id: str) -> float | None:
    """When ``queue_id`` is next due for delivery (0: now), or None if it is not deliverable."""
    where = spool.find(queue_id)
    if where is QueueState.INCOMING:
        return 0.0
    if where is QueueState.DEFERRED:
        try:
            return spool.read_state(queue_id).next_attempt
        except (CorruptRecord, OSError):
            return None  # the next start quarantines it
    return None


def apply_all(spool: Spool, action: Action, queue_ids: Iterable[str], now: float) -> Report:
    """Apply ``action`` to each id (no server running); collect what happened."""
    done: list[str] = []
    refused: list[str] = []
    for queue_id in queue_ids:
        try:
            done.append(apply(spool, action, queue_id, now))
        except ActionRefused as exc:
            refused.append(str(exc))
    return Report(tuple(done), tuple(refused))
