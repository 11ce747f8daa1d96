"""What the web app is given: the parts it serves, and the settings a reload replaces.

The service builds one :class:`WebDeps` at start; handlers reach the store, the queue, the
releaser and the metrics only through it, never through the running relay. Settings that a
reload may change travel as a :class:`WebSettings` value, put in force by
:meth:`relay.web.server.WebServer.reconfigure`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from relay.capture.maildir import CaptureStore
from relay.deliver.release import Releaser
from relay.metrics import Metrics
from relay.queue.actions import Action, Report
from relay.queue.spool import Spool
from relay.receive.faults import Faults
from relay.receive.users import PasswordHash
from relay.web.options import WebConfig

__all__ = ["Health", "QueueActions", "WebDeps", "WebSettings"]

#: Applies an operator action to queued messages while delivery runs (the queue manager's).
QueueActions = Callable[[Action, Sequence[str]], Awaitable[Report]]


@dataclass(frozen=True, slots=True, kw_only=True)
class Health:
    """What ``/readyz`` judges: the addresses listened on, where mail is stored, the
    largest message accepted, and since when delivery has failed (None: it has not)."""

    listening: tuple[str, ...]
    storage: Path
    largest: int
    failing_since: float | None


@dataclass(frozen=True, slots=True, kw_only=True)
class WebSettings:
    """What a reload may change: the web section, the filters' zone for calendar dates in
    queries, the patterns a release may go to (``capture.release.allowed``), and the users
    of HTTP basic auth (read from ``web.users_file``; empty: no login asked)."""

    web: WebConfig
    timezone: str
    release_allowed: tuple[str, ...]
    users: Mapping[str, PasswordHash] = field(default_factory=dict)


@dataclass(frozen=True, slots=True, kw_only=True)
class WebDeps:
    """The parts the page and API serve: the capture store (None: capture is off), the
    spool read for queue views and its actions (None: capture mode), the releaser (None:
    nowhere to release), the metrics, the facts of the readiness check (read per request)
    and the capture listener's fault injection (None: relay mode)."""

    capture: CaptureStore | None
    spool: Spool | None
    releaser: Releaser | None
    metrics: Metrics
    health: Callable[[], Health]
    queue_actions: QueueActions | None = None
    faults: Faults | None = None
