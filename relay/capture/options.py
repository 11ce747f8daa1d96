"""The ``capture:`` section: the Maildir store, its retention and manual release."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from relay.deliver.options import UpstreamConfig

__all__ = ["CaptureConfig", "ReleaseConfig"]


@dataclass(frozen=True, slots=True, kw_only=True)
class ReleaseConfig:
    """Manual release of captured mail (web page, API, ``mail release``).

    ``allowed``: shell-style recipient patterns a release may go to (empty: release is
    off); ``upstream``: where to (default: the top-level ``upstream``).
    """

    allowed: tuple[str, ...] = ()
    upstream: UpstreamConfig | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class CaptureConfig:
    """The capture store (a Maildir): on in capture mode, a switch in relay mode.

    Retention: at most ``max_messages`` (0: no limit), none older than ``max_age`` (0: no
    limit); the oldest go first.
    """

    path: Path = Path("mail")
    enabled: bool | None = None
    max_messages: int = field(default=10_000, metadata={"min": 0})
    max_age: float = field(default=0.0, metadata={"duration": True})
    release: ReleaseConfig = field(default_factory=ReleaseConfig)
