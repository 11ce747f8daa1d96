"""Config sections of the capture store beyond its path and retention: webhooks."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from relay.gmail import parse_query
from relay.secret import Secret

__all__ = ["WebhookConfig"]


@dataclass(frozen=True, slots=True, kw_only=True)
class WebhookConfig:
    """POST a JSON summary of each captured message (``new``) or deleted id (``deleted``)
    to ``url``; ``query`` (Gmail syntax) narrows ``new`` down to the messages it matches.

    With ``secret_file``, ``secret_env`` or ``secret_command`` each request carries an
    HMAC-SHA256 signature of its body; config loading reads the secret into ``secret``.
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
    secret: Secret | None = field(default=None, init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        parts = urlsplit(self.url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f'url: expected an http:// or https:// URL, got "{self.url}"')
        if not self.events:
            raise ValueError("events: expected at least one of new, deleted")
        if self.query:
            parse_query(self.query)  # a QuerySyntaxError is a ValueError naming the column

    @property
    def shown_url(self) -> str:
        """The URL as log lines show it: no user, password, query or fragment (tokens hide
        there)."""
        parts = urlsplit(self.url)
        port = f":{parts.port}" if parts.port else ""
        return f"{parts.scheme}://{parts.hostname}{port}{parts.path}"
