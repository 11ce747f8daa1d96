"""Retry arithmetic (pure): back-off doubling between a minimum and a cap, jitter, expiry."""

from __future__ import annotations

import random

from relay.queue.options import RetryConfig

__all__ = ["backoff", "expired"]


def backoff(attempts: int, retry: RetryConfig, *, rng: random.Random | None = None) -> float:
    """Seconds to wait after the ``attempts``-th failed attempt (1 = the first).

    The delay doubles from ``min_backoff`` up to ``max_backoff``; ``jitter`` spreads it by
    up to that fraction either way so that messages deferred together do not retry together.
    """
    delay = min(retry.max_backoff, retry.min_backoff * 2.0 ** max(0, attempts - 1))
    spread = (rng or random).uniform(-retry.jitter, retry.jitter)
    return max(0.0, delay * (1 + spread))


def expired(received_at: float, now: float, retry: RetryConfig) -> bool:
    """True once a message has been queued longer than ``lifetime``."""
    return now - received_at > retry.lifetime
