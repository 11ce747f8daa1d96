"""The ``notification:`` section: Trac's ``[notification]`` options, applied at the relay."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

__all__ = ["CleanupOptions"]


@dataclass(frozen=True, slots=True, kw_only=True)
class CleanupOptions:
    """Cleanup settings; names follow Trac's ``[notification]`` section.

    The defaults change nothing but the removal of any ``Bcc:`` header.
    """

    smtp_default_domain: str | None = None
    use_short_addr: bool = False
    mime_encoding: Literal["keep", "none", "base64", "qp", "quoted-printable", "auto"] = "keep"
