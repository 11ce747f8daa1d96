"""Prometheus metrics of one relay: counters bumped where events happen, queue gauges on scrape.

Each :class:`Metrics` has a registry of its own (no process-wide state), so two relays in
one process, as in the tests, count separately. Names follow postfix_exporter's habits::

    notify_relay_messages_received_total              accepted (answered 250) by a listener
    notify_relay_messages_rejected_total{reason}      refused by a listener
    notify_relay_messages_delivered_total             every recipient done, removed from the queue
    notify_relay_messages_deferred_total              attempts that left a message deferred
    notify_relay_messages_failed_total                moved to failed/ (a recipient bounced)
    notify_relay_delivery_latency_seconds             acceptance to delivery (histogram)
    notify_relay_upstream_replies_total{class}        2xx, 4xx, 5xx, or none (no reply at all)
    notify_relay_spool_write_failures_total           the queue could not record a delivery
    notify_relay_capture_failures_total               a delivered message got no capture copy
    notify_relay_queue_messages{state}                messages per queue directory, at scrape time
    notify_relay_queue_oldest_message_age_seconds     oldest message waiting for delivery
    notify_relay_quota_used{account,kind}             messages/recipients in the quota window
    notify_relay_quota_limit{account,kind}            the account's limits (kinds with a limit)
    notify_relay_quota_next_slot_timestamp_seconds{account}  when the next message may go (0: now)
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from relay.deliver.options import QuotaConfig
from relay.deliver.quota import read_usage
from relay.queue.spool import QueueState, Spool

__all__ = ["CONTENT_TYPE", "Metrics", "reply_class"]

#: The Content-Type of :meth:`Metrics.exposition` (Prometheus text format 0.0.4).
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

_LATENCY_BUCKETS = (0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600, 4 * 3600, 24 * 3600)
_WAITING = (QueueState.INCOMING, QueueState.DEFERRED)


def reply_class(code: int) -> str:
    """``"2xx"``, ``"4xx"``, ``"5xx"`` for a reply code; ``"none"`` when there was no reply."""
    return f"{code // 100}xx" if 200 <= code < 600 else "none"


class Metrics:
    """The relay's counters and histogram, and the queue gauges once a spool is watched."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        metric = {"registry": self.registry, "namespace": "notify_relay"}
        self._received = Counter(
            "messages_received", "Messages accepted by the listeners.", **metric
        )
        self._rejected = Counter(
            "messages_rejected", "Messages refused by the listeners.", ["reason"], **metric
        )
        self._delivered = Counter(
            "messages_delivered", "Messages delivered to every recipient.", **metric
        )
        self._deferred = Counter(
            "messages_deferred", "Delivery attempts that left a message deferred.", **metric
        )
        self._failed = Counter(
            "messages_failed", "Messages moved to failed/ because a recipient bounced.", **metric
        )
        self._latency = Histogram(
            "delivery_latency_seconds",
            "Seconds from acceptance to delivery.",
            buckets=_LATENCY_BUCKETS,
            **metric,
        )
        self._replies = Counter(
            "upstream_replies", "Upstream replies per recipient, by class.", ["class"], **metric
        )
        self._spool_failures = Counter(
            "spool_write_failures", "Times the queue could not record a delivery.", **metric
        )
        self._capture_failures = Counter(
            "capture_failures", "Delivered messages whose capture copy failed.", **metric
        )

    def received(self) -> None:
        """A listener accepted a message."""
        self._received.inc()

    def rejected(self, reason: str) -> None:
        """A listener refused a message or recipient for ``reason`` (a short label)."""
        self._rejected.labels(reason).inc()

    def replied(self, code: int) -> None:
        """The upstream answered ``code`` for a recipient (0: no reply, the session failed)."""
        self._replies.labels(reply_class(code)).inc()

    def delivered(self, latency: float) -> None:
        """A message reached every recipient ``latency`` seconds after it was accepted."""
        self._delivered.inc()
        self._latency.observe(latency)

    def deferred(self) -> None:
        """An attempt left a message deferred."""
        self._deferred.inc()

    def failed(self) -> None:
        """A message was moved to failed/."""
        self._failed.inc()

    def spool_failed(self) -> None:
        """The queue could not record the outcome of a delivery (e.g. a full disk)."""
        self._spool_failures.inc()

    def capture_failed(self) -> None:
        """A delivered message could not be copied to the capture store."""
        self._capture_failures.inc()

    def watch(
        self, spool: Spool, quotas: Callable[[], Mapping[str, QuotaConfig]] | None = None
    ) -> None:
        """Report the size of ``spool``'s directories and its oldest waiting message, and
        the quota usage recorded beside it against ``quotas()``, the limits in force."""
        self.registry.register(_QueueCollector(spool))
        self.registry.register(_QuotaCollector(spool, quotas))

    def exposition(self) -> bytes:
        """Every metric in the Prometheus text format."""
        return generate_latest(self.registry)


class _QueueCollector(Collector):
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
                if ids and state in _WAITING:
                    first = min(first, self.spool.path(ids[0], state).stat().st_mtime)
            except OSError:  # unreadable or moved meanwhile: readiness reports it
                continue
            sizes.add_metric([state.value], len(ids))
        oldest.add_metric([], now - first)
        yield sizes
        yield oldest


class _QuotaCollector(Collector):
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
