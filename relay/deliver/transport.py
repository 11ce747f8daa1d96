"""The transport seam of delivery: what the dispatcher needs of an upstream session.

:func:`relay.deliver.smtp.connect` is the network; tests give the dispatcher a scripted
function instead (as httpx separates its transports from the client).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol

from relay.deliver.oauth import TokenSource
from relay.deliver.options import UpstreamConfig
from relay.deliver.secrets import UpstreamSecrets
from relay.reply import Reply

__all__ = ["Clock", "Connect", "Session"]

#: Seconds since the epoch, as ``time.time``.
Clock = Callable[[], float]


class Session(Protocol):
    """An open, authenticated session: any number of transactions, then :meth:`close`."""

    @property
    def relay(self) -> str:
        """The peer as Postfix names it: ``host[address]:port``."""

    @property
    def supports_8bitmime(self) -> bool:
        """Whether the upstream advertised 8BITMIME."""

    @property
    def supports_smtputf8(self) -> bool:
        """Whether the upstream advertised SMTPUTF8."""

    @property
    def usable(self) -> bool:
        """False once the connection broke."""

    @property
    def transactions(self) -> int:
        """Transactions begun on this session (a kept session serves ``batch_size`` at most)."""

    async def ready(self) -> bool:
        """Whether the session still answers (an RSET) before it is reused."""

    async def send(
        self,
        sender: str,
        recipients: Sequence[str],
        message: bytes,
        *,
        mail_options: Sequence[str] = (),
    ) -> dict[str, Reply]:
        """One transaction: the reply for each recipient (code 0: no reply)."""

    async def close(self) -> None:
        """End the session (QUIT if possible)."""

    def abort(self) -> None:
        """Close the connection at once, without a QUIT."""


class Connect(Protocol):
    """Open a session with ``upstream``, logging in with ``secrets`` or ``tokens`` (an MX
    host's (name, address) when given; ``after_refusal``: the last login was refused, so
    one attempt with a new token).

    Raises :class:`~relay.errors.UpstreamError`, whose ``relay`` names the peer tried.
    """

    async def __call__(
        self,
        upstream: UpstreamConfig,
        *,
        hostname: str,
        secrets: UpstreamSecrets,
        tokens: TokenSource | None,
        mx_host: tuple[str, str] | None,
        after_refusal: bool,
    ) -> Session: ...
