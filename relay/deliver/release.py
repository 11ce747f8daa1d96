"""Release of captured mail by hand, through delivery: the same sessions, quota, SMTPUTF8
check, 8BITMIME downgrade, DKIM signing and log lines as queued mail.

The address guard is capture's (:func:`relay.capture.release.release_recipients`); this
module only sends. In relay mode a release shares the delivery's dispatcher (its quota
governors, holds and tokens) but goes to the release upstream alone, not along the routes.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path

from relay.deliver.dispatch import Dispatcher, Result
from relay.deliver.dkim import SigningKey
from relay.deliver.options import UpstreamConfig
from relay.deliver.outcome import classify
from relay.deliver.secrets import SecretsByUpstream
from relay.log import log_delivery
from relay.record import Attempt, Record
from relay.reply import Reply
from relay.resolver import DnsConfig

__all__ = ["Releaser"]


class Releaser:
    """Sends captured messages to the release upstream (None: release has nowhere to go)."""

    def __init__(self, *, hostname: str, state: Path, shared: Dispatcher | None) -> None:
        """``state``: the quota directory; ``shared``: the delivery's dispatcher, if any."""
        self.hostname, self.state, self.shared = hostname, state, shared
        self.upstream: UpstreamConfig | None = None
        self._own: Dispatcher | None = None

    def reconfigure(
        self,
        upstream: UpstreamConfig | None,
        *,
        hold: float,
        dns: DnsConfig | None,
        dkim: Sequence[SigningKey],
        secrets: SecretsByUpstream,
    ) -> None:
        """Release to ``upstream``, logging in with what ``secrets`` holds for it, from now
        on (start and reload)."""
        self.upstream = upstream
        if self.shared is not None or upstream is None:
            return  # the delivery's dispatcher is reconfigured with the queue
        if self._own is None:
            self._own = Dispatcher(
                (upstream,), hostname=self.hostname, state=self.state, hold=hold, dns=dns
            )
        self._own.configure((upstream,), dns=dns, hold=hold, dkim=dkim, secrets=secrets)

    async def release(self, record: Record, recipients: Sequence[str]) -> list[dict[str, object]]:
        """Deliver ``record`` to ``recipients`` now; one attempt per distinct relay and reply.

        ``recipients`` come from :func:`~relay.capture.release.release_recipients`, so what
        was checked is what is sent. An ``mx`` upstream cannot be released to.
        """
        upstream, dispatcher = self.upstream, self.shared or self._own
        assert upstream is not None, "no release upstream"
        assert dispatcher is not None
        if upstream.mx:
            reply = Reply(0, "cannot release by MX lookup: configure capture.release.upstream")
            result = Result(
                replies=dict.fromkeys(recipients, reply),
                relays=dict.fromkeys(recipients, str(upstream)),
            )
        else:
            async with dispatcher.run() as run:
                result = await run.deliver(record, recipients, via=(upstream,))
        return _attempts(record, result)


def _attempts(record: Record, result: Result) -> list[dict[str, object]]:
    """Log each recipient's line as delivery does; group them into timeline attempts."""
    now = time.time()
    groups: dict[tuple[str, Reply], list[str]] = {}
    for rcpt, reply in (*result.replies.items(), *result.waiting.items()):
        relay, status = result.relays[rcpt], classify(reply)
        log_delivery(
            record.queue_id,
            rcpt,
            relay=relay,
            delay=now - record.envelope.received_at,
            attempts=1,
            dsn=reply.dsn,
            status=status.value,
            reply=str(reply),
        )
        groups.setdefault((relay, reply), []).append(rcpt)
    return [
        Attempt(
            at=now,
            relay=relay,
            recipients=tuple(rcpts),
            status=classify(reply).value,
            reply=str(reply),
        ).as_dict()
        for (relay, reply), rcpts in groups.items()
    ]
