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

import functools
from pathlib import Path

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

__all__ = ["CONTENT_TYPE", "Metrics", "reply_class"]

#: The Content-Type of :meth:`Metrics.exposition` (Prometheus text format 0.0.4).
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

_LATENCY_BUCKETS = (0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600, 4 * 3600, 24 * 3600)


def reply_class(code: int) -> str:
    """``"2xx"``, ``"4xx"``, ``"5xx"`` for a reply code; ``"none"`` when there was no reply."""
    return f"{code // 100}xx" if 200 <= code < 600 else "none"


class Metrics:
    """The relay's counters and histogram, and the queue gauges once a spool is watched."""

    def __init__(self, shared: Path | None = None) -> None:
        """``shared``: the directory where every process of a split relay keeps its counts
        (prometheus_client's multiprocess mode, on when ``PROMETHEUS_MULTIPROC_DIR`` was
        set before the import); :meth:`exposition` then adds them all up."""
        self.registry = CollectorRegistry()
        self._exposed = self.registry
        if shared is not None:
            self._exposed = CollectorRegistry()
            MultiProcessCollector(self._exposed, path=str(shared))  # type: ignore[no-untyped-call]
        counter = functools.partial(Counter, registry=self.registry, namespace="notify_relay")
        histogram = functools.partial(Histogram, registry=self.registry, namespace="notify_relay")
        self._received = counter("messages_received", "Messages accepted by the listeners.")
        self._rejected = counter(
            "messages_rejected", "Messages refused by the listeners.", ["reason"]
        )
        self._delivered = counter("messages_delivered", "Messages delivered to every recipient.")
        self._deferred = counter(
            "messages_deferred", "Delivery attempts that left a message deferred."
        )
        self._failed = counter(
            "messages_failed", "Messages moved to failed/ because a recipient bounced."
        )
        self._latency = histogram(
            "delivery_latency_seconds",
            "Seconds from acceptance to delivery.",
            buckets=_LATENCY_BUCKETS,
        )
        self._replies = counter(
            "upstream_replies", "Upstream replies per recipient, by class.", ["class"]
        )
        self._spool_failures = counter(
            "spool_write_failures", "Times the queue could not record a delivery."
        )
        self._capture_failures = counter(
            "capture_failures", "Delivered messages whose capture copy failed."
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

    def watch(self, *collectors: Collector) -> None:
        """Report what ``collectors`` read at scrape time (:mod:`relay.queue.gauges`)."""
        for collector in collectors:
            self._exposed.register(collector)

    def exposition(self) -> bytes:
        """Every metric in the Prometheus text format."""
        return generate_latest(self._exposed)
