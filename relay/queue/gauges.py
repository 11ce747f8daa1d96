"""Prometheus collectors that read the spool and the quota files at scrape time.

The spool, not memory, is the truth: ``/metrics`` reports what is on disk.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from relay.deliver.options import QuotaConfig
from relay.deliver.quota import read_usage
from relay.queue.spool import QueueState, Spool

__all__ = ["QueueCollector", "QuotaCollector", "spool_collectors"]

_WAITING = (QueueState.INCOMING, QueueState.DEFERRED)


def spool_collectors(
    spool: Spool, quotas: Callable[[], Mapping[str, QuotaConfig]] | None = None
) -> tuple[Collector, ...]:
    """The size of ``spool``'s directories and its oldest waiting message, and the quota
    usage recorded beside it against ``quotas()``, the limits in force."""
    return QueueCollector(spool), QuotaCollector(spool, quotas)


class QueueCollector(Collector):
    """Reads the spool directories at scrape time: the spool, not memory, is the truth."""

    def __init__(self, spool: Spool) -> None:
        self.spool = spool

    def describe(self) -> list[Metric]:
        return list(self._families())

    def _families(self) -> tuple[GaugeMetricFamily, GaugeMetricFamily]:
        return (
            GaugeMetricFamily(
                "notify_relay_queue_messages", "Messages in the queue, by state.", labels=["state"]
            ),
            GaugeMetricFamily(
                "notify_relay_queue_oldest_message_age_seconds",
                "Age of the oldest message waiting for delivery (incoming or deferred).",
            ),
        )

    def collect(self) -> Iterator[Metric]:
        sizes, oldest = self._families()
        now = time.time()
        first = now
        for state in QueueState:
            try:
                ids = self.spool.ids(state)
                if state is QueueState.INCOMING:  # a file being written is no message yet
                    ids = [queue_id for queue_id in ids if not self.spool.unfinished(queue_id)]
                if ids and state in _WAITING:
                    first = min(first, self.spool.path(ids[0], state).stat().st_mtime)
            except OSError:  # unreadable or moved meanwhile: readiness reports it
                continue
            sizes.add_metric([state.value], len(ids))
        oldest.add_metric([], now - first)
        yield sizes
        yield oldest


class QuotaCollector(Collector):
    """Reads the quota state files beside the spool at scrape time; the limits are the
    configured ones (a file names those in force when it was last written)."""

    def __init__(
        self, spool: Spool, quotas: Callable[[], Mapping[str, QuotaConfig]] | None
    ) -> None:
        self.directory = spool.root / "quota"
        self.quotas = quotas

    def describe(self) -> list[Metric]:
        return list(self._families())

    def _families(self) -> tuple[GaugeMetricFamily, ...]:
        kinds = ["account", "kind"]
        return (
            GaugeMetricFamily("notify_relay_quota_used", "Sent in the window.", labels=kinds),
            GaugeMetricFamily("notify_relay_quota_limit", "Allowed per window.", labels=kinds),
            GaugeMetricFamily(
                "notify_relay_quota_next_slot_timestamp_seconds",
                "When the next message may go (0: now).",
                labels=["account"],
            ),
        )

    def collect(self) -> Iterator[Metric]:
        used, limit, slot = self._families()
        configured = self.quotas() if self.quotas is not None else None
        for usage in read_usage(self.directory, time.time(), configured):
            for kind, count, most in (
                ("messages", usage.messages, usage.message_limit),
                ("recipients", usage.recipients, usage.recipient_limit),
            ):
                used.add_metric([usage.account, kind], count)
                if most:
                    limit.add_metric([usage.account, kind], most)
            slot.add_metric([usage.account], usage.next_slot or 0)
        yield from (used, limit, slot)
