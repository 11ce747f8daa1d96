"""The cleanup stage: pure functions over (envelope, message) -> (envelope, message, trace)."""

from __future__ import annotations

from relay.cleanup.directory import Directory
from relay.cleanup.options import CleanupOptions
from relay.cleanup.pipeline import check_recipient, run
from relay.cleanup.result import CleanupResult, Rejection

__all__ = ["CleanupOptions", "CleanupResult", "Directory", "Rejection", "check_recipient", "run"]
