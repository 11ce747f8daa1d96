"""The ``queue:`` section: where the durable spool lives and how delivery retries."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["QueueConfig", "RetryConfig"]


@dataclass(frozen=True, slots=True, kw_only=True)
class RetryConfig:
    """The retry schedule: exponential back-off with jitter, as Postfix does."""

    min_backoff: float = field(default=300.0, metadata={"duration": True})
    max_backoff: float = field(default=7200.0, metadata={"duration": True})
    lifetime: float = field(default=5 * 86400.0, metadata={"duration": True})
    jitter: float = field(default=0.1, metadata={"min": 0.0, "max": 1.0})


@dataclass(frozen=True, slots=True, kw_only=True)
class QueueConfig:
    """Where the durable spool lives and how it retries."""

    path: Path = Path("queue")
    retry: RetryConfig = field(default_factory=RetryConfig)
