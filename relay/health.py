"""Readiness (pure): what ``/readyz`` answers, from facts the running relay gathers.

Ready means: the SMTP listeners are up, the queue (or, in capture mode, the capture store)
takes writes, and the upstream has not been failing for longer than a grace period — a
Gmail blip must not take the relay out of a load balancer, an hour of refusals should.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["UPSTREAM_GRACE", "Check", "Readiness", "readiness"]

#: Seconds the upstream may fail continuously before the relay reports itself unready.
UPSTREAM_GRACE = 600.0


@dataclass(frozen=True, slots=True)
class Check:
    """One readiness condition and what was found."""

    name: str
    ok: bool
    detail: str


@dataclass(frozen=True, slots=True)
class Readiness:
    """All readiness checks; ready when every one passed."""

    checks: tuple[Check, ...]

    @property
    def ready(self) -> bool:
        """True when every check passed."""
        return all(check.ok for check in self.checks)

    def as_dict(self) -> dict[str, object]:
        """The verdict as JSON-able data (the body of ``/readyz``)."""
        return {
            "ready": self.ready,
            "checks": {c.name: {"ok": c.ok, "detail": c.detail} for c in self.checks},
        }


def readiness(
    *,
    listening: tuple[str, ...],
    storage: str,
    storage_problem: str | None,
    failing_since: float | None,
    now: float,
    grace: float = UPSTREAM_GRACE,
) -> Readiness:
    """Judge readiness from what the relay reports.

    ``listening`` are the bound listener addresses (empty: not up); ``storage_problem`` is
    why writing to ``storage`` failed, or None; ``failing_since`` is when the upstream
    began refusing sessions (None: it works, or was not tried yet, or there is none).
    """
    listeners = Check(
        "listeners",
        bool(listening),
        ", ".join(listening) if listening else "no SMTP listener is up",
    )
    writable = Check(
        "storage",
        storage_problem is None,
        f"{storage} is writable" if storage_problem is None else storage_problem,
    )
    if failing_since is None:
        upstream = Check("upstream", True, "reachable, or not tried yet")
    else:
        failing = now - failing_since
        upstream = Check(
            "upstream",
            failing <= grace,
            f"failing for {failing:.0f} s (unready after {grace:.0f} s)",
        )
    return Readiness((listeners, writable, upstream))
