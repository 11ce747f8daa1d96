"""Upstream sessions kept open between batches for ``upstream.idle_time`` seconds.

The next batch to the same target takes a kept session instead of connecting, negotiating
TLS and logging in again; an RSET checks it first, and a session that fails the check is
closed and replaced. A session is not kept once it has sent ``batch_size`` messages (one
login serves at most that many, as without reuse), nor after its upstream's credentials
change. Nothing else changes: quota and holds are decided before a session is asked for.
"""

from __future__ import annotations

import asyncio

from relay.deliver.options import UpstreamConfig
from relay.deliver.transport import Session

__all__ = ["SessionPool", "Target"]

#: An upstream, and the MX host (name, address) when it delivers by MX.
Target = tuple[UpstreamConfig, tuple[str, str] | None]


class SessionPool:
    """Idle sessions by target, each closed by its own timer unless taken first."""

    def __init__(self) -> None:
        self._idle: dict[Target, list[tuple[Session, asyncio.Task[None]]]] = {}

    def keep(self, target: Target, session: Session) -> bool:
        """Keep ``session`` for the next batch; False when it should be closed instead."""
        config = target[0]
        if config.idle_time <= 0 or not session.usable:
            return False
        if session.transactions >= config.batch_size:
            return False
        expiry = asyncio.create_task(self._expire(target, session, config.idle_time))
        self._idle.setdefault(target, []).append((session, expiry))
        return True

    async def take(self, target: Target) -> Session | None:
        """A kept session with ``target`` that answered an RSET, or None."""
        while kept := self._idle.get(target):
            session, expiry = kept.pop()
            expiry.cancel()
            if await session.ready():
                return session
            await session.close()
        return None

    def close(self) -> None:
        """Close every kept session (stop, or credentials changed) without waiting for
        the upstream to answer a QUIT."""
        idle, self._idle = self._idle, {}
        for kept in idle.values():
            for session, expiry in kept:
                expiry.cancel()
                session.abort()

    async def _expire(self, target: Target, session: Session, after: float) -> None:
        await asyncio.sleep(after)
        kept = self._idle.get(target, [])
        kept[:] = [entry for entry in kept if entry[0] is not session]
        await session.close()
