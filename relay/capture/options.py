"""The ``capture:`` section: the Maildir store, its retention, manual release, webhooks."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from relay.deliver.options import UpstreamConfig
from relay.gmail import parse_query
from relay.receive.faults import FaultsConfig

__all__ = ["CaptureConfig", "ReleaseConfig", "WebhookConfig"]

_SECRET_SOURCES = ("secret_file", "secret_env", "secret_command")


@dataclass(frozen=True, slots=True, kw_only=True)
class WebhookConfig:
    """POST a JSON summary of each captured message (``new``) or deleted id (``deleted``)
    to ``url``; ``query`` (Gmail syntax) narrows ``new`` down to the messages it matches.

    With ``secret_file``, ``secret_env`` or ``secret_command`` each request carries an
    HMAC-SHA256 signature of its body; :mod:`relay.credentials` reads the secret.
    ``attempts`` tries per event, ``timeout`` per try.
    """

    url: str
    events: tuple[Literal["new", "deleted"], ...] = ("new",)
    query: str | None = None
    secret_file: Path | None = None
    secret_env: str | None = None
    secret_command: str | None = None
    attempts: int = field(default=5, metadata={"min": 1, "max": 20})
    timeout: float = field(default=10.0, metadata={"duration": True, "min": 0.1, "max": 300})

    def __post_init__(self) -> None:
        parts = urlsplit(self.url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f'url: expected an http:// or https:// URL, got "{self.url}"')
        if not self.events:
            raise ValueError("events: expected at least one of new, deleted")
        if self.query:
            parse_query(self.query)  # a QuerySyntaxError is a ValueError naming the column

    @property
    def secret_sources(self) -> list[str]:
        """The secret keys this webhook sets (a checked one sets at most one)."""
        return [name for name in _SECRET_SOURCES if getattr(self, name) is not None]

    @property
    def shown_url(self) -> str:
        """The URL as log lines show it: no user, password, query or fragment (tokens hide
        there)."""
        parts = urlsplit(self.url)
        port = f":{parts.port}" if parts.port else ""
        return f"{parts.scheme}://{parts.hostname}{port}{parts.path}"


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
    limit); the oldest go first. ``faults``: errors injected on the listener (capture mode
    only); ``webhooks``: where each captured message is announced.
    """

    path: Path = Path("mail")
    enabled: bool | None = None
    max_messages: int = field(default=10_000, metadata={"min": 0})
    max_age: float = field(default=0.0, metadata={"duration": True})
    release: ReleaseConfig = field(default_factory=ReleaseConfig)
    faults: FaultsConfig = field(default_factory=FaultsConfig)
    webhooks: tuple[WebhookConfig, ...] = ()
