"""The delivery loop: take records from the spool, deliver them upstream, move them by outcome.

Workers (``upstream.connections`` of them) each take a batch of ready messages and send
them over one authenticated session (Gmail throttles repeated logins). Every recipient
ends delivered, bounced (kept in ``failed/`` with the reply) or deferred with a back-off;
bad credentials hold the whole queue instead of failing each message.

A recipient the upstream accepted is never sent again because local bookkeeping failed:
it is marked delivered in its queue file in place (no new disk blocks, see
:meth:`~relay.queue.spool.Spool.mark_delivered`) and remembered in memory, and when the
spool cannot be written the message waits with a back-off that doubles per consecutive
failure. The capture copy (``on_delivered``) is best-effort: its failure is logged and
counted, never retried by delivering again.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import replace

from relay.deliver.dispatch import Dispatcher, Result
from relay.deliver.dkim import SigningKey
from relay.deliver.options import UpstreamConfig
from relay.deliver.outcome import classify
from relay.deliver.secrets import SecretsByUpstream
from relay.errors import SpoolError
from relay.log import fields, log_delivery, logger
from relay.metrics import Metrics
from relay.model import Status
from relay.queue.actions import Action, ActionRefused, Report, apply, due
from relay.queue.options import RetryConfig
from relay.queue.schedule import backoff, expired
from relay.queue.spool import QueueState, Spool
from relay.record import Attempt, CorruptRecord, DeliveryState, Record, UnfinishedRecord
from relay.reply import Reply
from relay.resolver import DnsConfig

__all__ = ["QueueManager"]

Delivered = Callable[[Record, DeliveryState], Awaitable[None]]
Loaded = tuple[Record, DeliveryState, QueueState]


class QueueManager:
    """Owns the in-memory schedule over a :class:`Spool`; the spool stays the truth."""

    def __init__(
        self,
        spool: Spool,
        upstream: UpstreamConfig,
        retry: RetryConfig,
        *,
        hostname: str,
        on_delivered: Delivered | None = None,
        metrics: Metrics | None = None,
        dispatcher: Dispatcher | None = None,
    ) -> None:
        """``dispatcher``: several upstreams, routes, quota, MX (default: ``upstream`` only)."""
        self.spool = spool
        self.metrics = metrics or Metrics()
        self.dispatcher = dispatcher or Dispatcher(
            (upstream,), hostname=hostname, state=spool.root / "quota", hold=retry.min_backoff
        )
        self.upstream = upstream
        self.retry = retry
        self.hostname = hostname
        self.on_delivered = on_delivered
        self._ready: asyncio.Queue[str] = asyncio.Queue()
        self._timers: dict[str, asyncio.TimerHandle] = {}
        self._busy: set[str] = set()
        #: Busy ids submitted again meanwhile: their batch may have skipped them, unfinished
        #: (a receive worker was writing them), so it submits them again when it ends.
        self._again: set[str] = set()
        self._tasks: list[asyncio.Task[None]] = []
        #: Recipients the upstream accepted, per message still in the spool: the spool may
        #: fail to say so, and they must never be sent again.
        self._sent: dict[str, set[str]] = {}
        self._storage_failures = 0  # consecutive failures to write the spool

    async def start(self) -> None:
        """Pick up everything left in the spool, then start the workers."""
        incoming, deferred = await asyncio.to_thread(self._scan)
        for queue_id in incoming:
            self.submit(queue_id)
        for queue_id, when in deferred:
            self._schedule(queue_id, when)
        if incoming or deferred:
            logger.info(
                "queue: resumed %d incoming and %d deferred messages",
                len(incoming),
                len(deferred),
                extra=fields(incoming=len(incoming), deferred=len(deferred)),
            )
        self._tasks = [
            asyncio.create_task(self._worker()) for _ in range(self.upstream.connections)
        ]

    async def stop(self) -> None:
        """Stop the workers; messages in flight stay in the spool for the next start.

        A worker is cancelled until it ends: one cancellation can be lost below it (Python
        3.11's ``asyncio.wait_for`` inside aiosmtplib, gh-86296, e.g. at a refused connect),
        and stop would then wait for ever.
        """
        for handle in self._timers.values():
            handle.cancel()
        running = set(self._tasks)
        while running:
            for task in running:
                task.cancel()
            _, running = await asyncio.wait(running, timeout=0.1)
        self.dispatcher.pool.close()

    def submit(self, queue_id: str) -> None:
        """Deliver ``queue_id`` as soon as a worker is free."""
        timer = self._timers.pop(queue_id, None)
        if timer is not None:
            timer.cancel()
        self._ready.put_nowait(queue_id)

    async def rescan(self) -> None:
        """Submit every incoming message not being delivered: a receive worker that died
        may have written one without saying so. A message submitted twice is sent once."""
        waiting = await asyncio.to_thread(self.spool.ids, QueueState.INCOMING)
        for queue_id in waiting:
            if queue_id in self._busy:
                self._again.add(queue_id)
            else:
                self.submit(queue_id)

    @property
    def failing_since(self) -> float | None:
        """When the upstream began failing to give a session (None: fine or not yet tried)."""
        return self.dispatcher.failing_since

    def reconfigure(
        self,
        upstream: UpstreamConfig,
        retry: RetryConfig,
        *,
        upstreams: Sequence[UpstreamConfig] = (),
        dns: DnsConfig | None = None,
        dkim: Sequence[SigningKey] | None = None,
        secrets: SecretsByUpstream | None = None,
    ) -> None:
        """Use new upstream settings from the next session on (a reload).

        A changed upstream (password included) ends a hold for bad credentials and makes
        every deferred message due now: the operator fixed something, so try it.
        ``upstreams``: all of them, when there are several; ``dkim``: the signing keys;
        ``secrets``: each upstream's password and OAuth secrets.
        """
        changed = self.dispatcher.configure(
            upstreams or (upstream,), dns=dns, hold=retry.min_backoff, dkim=dkim, secrets=secrets
        )
        self.upstream, self.retry = upstream, retry
        if changed:
            for queue_id in list(self._timers):
                self.submit(queue_id)

    async def apply(self, action: Action, queue_ids: Sequence[str]) -> Report:
        """Apply an operator action while delivery runs, then reschedule from the spool.

        A message that is being delivered right now is refused, never changed under a worker.
        """
        done: list[str] = []
        refused: list[str] = []
        for queue_id in queue_ids:
            if queue_id in self._busy:
                refused.append(f"{queue_id}: being delivered right now; try again in a moment")
                continue
            self._busy.add(queue_id)
            try:
                line, ok, when = await asyncio.to_thread(self._apply_one, action, queue_id)
            finally:
                self._busy.discard(queue_id)
            (done if ok else refused).append(line)
            if ok and action is Action.DELETE:
                self._sent.pop(queue_id, None)
            timer = self._timers.pop(queue_id, None)
            if timer is not None:
                timer.cancel()
            if when is not None:
                self._schedule(queue_id, when)
        return Report(tuple(done), tuple(refused))

    def _apply_one(self, action: Action, queue_id: str) -> tuple[str, bool, float | None]:
        try:
            line, ok = apply(self.spool, action, queue_id, time.time()), True
        except ActionRefused as exc:
            line, ok = str(exc), False
        return line, ok, due(self.spool, queue_id)

    def _schedule(self, queue_id: str, when: float) -> None:
        timer = self._timers.pop(queue_id, None)
        if timer is not None:
            timer.cancel()
        loop = asyncio.get_running_loop()
        self._timers[queue_id] = loop.call_later(
            max(0.0, when - time.time()), self.submit, queue_id
        )

    def _scan(self) -> tuple[list[str], list[tuple[str, float]]]:
        for queue_id in self.spool.orphan_states():
            (self.spool.root / "state" / f"{queue_id}.json").unlink(missing_ok=True)
        deferred = []
        for queue_id in self.spool.ids(QueueState.DEFERRED):
            try:
                deferred.append((queue_id, self.spool.read_state(queue_id).next_attempt))
            except CorruptRecord as exc:
                self._quarantine(queue_id, QueueState.DEFERRED, str(exc))
        return self.spool.ids(QueueState.INCOMING), deferred

    async def _worker(self) -> None:
        while True:
            batch = [await self._ready.get()]
            while len(batch) < self.upstream.batch_size and not self._ready.empty():
                batch.append(self._ready.get_nowait())
            self._again.update(queue_id for queue_id in batch if queue_id in self._busy)
            batch = [queue_id for queue_id in dict.fromkeys(batch) if queue_id not in self._busy]
            self._busy.update(batch)
            try:
                await self._deliver_batch(batch)
            except SpoolError as exc:
                self.metrics.spool_failed()
                self._retry_batch(batch, str(exc))
            except Exception:  # noqa: BLE001 - a bug must not end the worker: the batch stays
                logger.exception(
                    "%s: unexpected error while delivering",
                    " ".join(batch),
                    extra=fields(queue_id=" ".join(batch)),
                )
                self._retry_batch(batch, "unexpected error")
            finally:
                self._busy.difference_update(batch)
                self._resubmit(batch)

    def _resubmit(self, batch: list[str]) -> None:
        """Submit again what was submitted while ``batch`` had it, unless it has a retry
        timer (deferred, or a local failure): delivered or moved meanwhile, its load finds
        nothing; seen unfinished in ``incoming/`` by the batch, it goes now."""
        for queue_id in self._again.intersection(batch):
            self._again.discard(queue_id)
            if queue_id not in self._timers:
                self.submit(queue_id)

    def _retry_batch(self, batch: list[str], why: str) -> None:
        """Try a batch again after a back-off; its files never left the spool."""
        delay = self._local_trouble()
        logger.error(
            "%s: %s; next try in %.1f s",
            " ".join(batch),
            why,
            delay,
            extra=fields(queue_id=" ".join(batch), reason=why, retry_in=delay),
        )
        for queue_id in batch:
            self._schedule(queue_id, time.time() + delay)

    def _local_trouble(self) -> float:
        """Count a local failure (spool, or a bug); the delay doubles while they go on."""
        self._storage_failures += 1
        return backoff(self._storage_failures, self.retry)

    async def _deliver_batch(self, batch: list[str]) -> None:
        """Send a batch over one session per upstream; finished records are removed together.

        Disk work is done in two thread hops per batch (load all, remove all), not per
        message. A crash before the removal can resend the batch's delivered messages: a
        duplicate, never a loss.
        """
        loaded = await asyncio.to_thread(self._load_all, batch)
        finished: list[tuple[str, QueueState]] = []
        try:
            async with self.dispatcher.run() as run:
                for record, state, where in loaded:
                    result = await run.deliver(record, state.pending(record.envelope))
                    if await self._settle(record, state, where, result):
                        finished.append((record.queue_id, where))
        finally:
            if finished:
                await asyncio.to_thread(self._remove_all, finished)

    async def _settle(
        self, record: Record, state: DeliveryState, where: QueueState, result: Result
    ) -> bool:
        """Record the results, log them, and move the record by outcome.

        Recipients waiting for a quota were not attempted: no attempt is counted for them
        and they never expire. Returns True when every recipient is delivered: the caller
        removes the record.
        """
        now, queue_id = time.time(), record.queue_id
        sent = [rcpt for rcpt, reply in result.replies.items() if classify(reply) is Status.SENT]
        self._sent.setdefault(queue_id, set()).update(sent)
        new = self._account(record, state, result, now)
        pending = new.pending(record.envelope)
        target = QueueState.DEFERRED if pending else QueueState.FAILED if new.failed else None
        if target is not None:
            # held recipients (bad credentials) go again when the hold ends, not later
            tried = result.replies.keys() - result.held
            retry = now + backoff(new.attempts, self.retry) if tried else 0.0
            when = max(retry, result.not_before) or now
            if pending:
                reason = "quota" if result.waiting else "deferred"
                new = replace(new, next_attempt=when, reason=reason)
            else:
                new = replace(new, reason="failed")
            if await self._store(record, sent, new, where, target):  # else: retried later
                if pending:
                    self._schedule(queue_id, when)
                else:
                    self._sent.pop(queue_id, None)  # final, in failed/
            (self.metrics.deferred if pending else self.metrics.failed)()
        else:
            self.metrics.delivered(now - record.envelope.received_at)
        if sent and self.on_delivered is not None:
            await self._keep_copy(record, new)
        return target is None

    def _account(
        self, record: Record, state: DeliveryState, result: Result, now: float
    ) -> DeliveryState:
        """The delivery state after ``result``, with a log line per recipient."""
        attempts = state.attempts + (1 if result.replies else 0)
        done, failed, log = list(state.done), list(state.failed), list(state.log)
        for rcpt, reply in (*result.replies.items(), *result.waiting.items()):
            relay, status = result.relays[rcpt], classify(reply)
            if rcpt in result.replies:
                self.metrics.replied(reply.code)
                if (
                    status is Status.DEFERRED
                    and rcpt not in result.held
                    and expired(record.envelope.received_at, now, self.retry)
                ):
                    status, reply = (
                        Status.BOUNCED,
                        Reply(reply.code, f"{reply.text} (gave up: queued too long)"),
                    )
                (
                    done if status is Status.SENT else failed if status is Status.BOUNCED else []
                ).append(rcpt)
                log.append(
                    Attempt(
                        at=now,
                        relay=relay,
                        recipients=(rcpt,),
                        status=status.value,
                        reply=str(reply),
                    )
                )
            log_delivery(
                record.queue_id,
                rcpt,
                relay=relay,
                delay=now - record.envelope.received_at,
                attempts=attempts,
                dsn=reply.dsn,
                status=status.value,
                reply=str(reply),
            )
        # the reply that tells why the message is still here, not a recipient's 250
        latest = log[len(state.log) :]
        failing = [attempt.reply for attempt in latest if attempt.status != Status.SENT.value]
        return replace(
            state,
            attempts=attempts,
            done=tuple(done),
            failed=tuple(failed),
            log=tuple(log),
            last_reply=(failing or [attempt.reply for attempt in latest] or [state.last_reply])[-1],
        )

    async def _keep_copy(self, record: Record, state: DeliveryState) -> None:
        """Hand a delivered message to ``on_delivered`` (the capture copy), best-effort.

        Whatever goes wrong there, the delivery stands: it is logged and counted, never
        repeated (hence the broad except: no failure of a copy may resend mail).
        """
        assert self.on_delivered is not None
        try:
            await self.on_delivered(record, state)
        except Exception as exc:  # noqa: BLE001 - whatever fails, the delivery stands
            self.metrics.capture_failed()
            logger.error(
                "%s: capture copy not stored (%s); the delivery stands and is not repeated",
                record.queue_id,
                exc,
                exc_info=not isinstance(exc, OSError),
                extra=fields(queue_id=record.queue_id, reason=str(exc)),
            )

    async def _store(
        self,
        record: Record,
        sent: Sequence[str],
        state: DeliveryState,
        source: QueueState,
        target: QueueState,
    ) -> bool:
        """Persist the outcome of an attempt: mark ``sent`` done in the record first (that
        needs no new blocks), then the state and the move. If the spool fails, log it,
        schedule the next try after the local back-off and return False."""

        def persist() -> None:
            if sent and record.markable:  # else a version 1 file: the state file says it
                self.spool.mark_delivered(record, source, sent)
            self.spool.write_state(record.queue_id, state)
            if source is not target:
                self.spool.move(record.queue_id, source, target)

        try:
            await asyncio.to_thread(persist)
        except (SpoolError, OSError) as exc:
            self.metrics.spool_failed()
            delay = self._local_trouble()
            logger.error(
                "%s: %s; recipients the upstream took are not sent again; next try in %.1f s",
                record.queue_id,
                exc,
                delay,
                extra=fields(queue_id=record.queue_id, reason=str(exc), retry_in=delay),
            )
            self._schedule(record.queue_id, time.time() + delay)
            return False
        self._storage_failures = 0
        return True

    def _load_all(self, queue_ids: Sequence[str]) -> list[Loaded]:
        return [loaded for loaded in map(self._load, queue_ids) if loaded is not None]

    def _remove_all(self, finished: Sequence[tuple[str, QueueState]]) -> None:
        for queue_id, where in finished:
            self.spool.remove(queue_id, where, sync=False)
            self._sent.pop(queue_id, None)
            logger.info("%s: removed", queue_id, extra=fields(queue_id=queue_id))
        self.spool.sync({where for _, where in finished})  # one fsync per directory

    def _load(self, queue_id: str) -> Loaded | None:
        where = self.spool.find(queue_id)
        if where not in (QueueState.INCOMING, QueueState.DEFERRED):
            return None  # delivered, held or deleted meanwhile
        try:
            record, state = self.spool.load(queue_id, where)
            state = state.with_done(self._sent.get(queue_id, ()))
            if not record.markable:
                record = self._upgrade(record, state, where)
            return record, state, where
        except CorruptRecord as exc:
            if not (isinstance(exc, UnfinishedRecord) and where is QueueState.INCOMING):
                self._quarantine(queue_id, where, str(exc))
            # else a receive worker is writing it (its wake-up follows), or died doing so
        except FileNotFoundError:
            pass
        return None

    def _upgrade(self, record: Record, state: DeliveryState, where: QueueState) -> Record:
        """Rewrite a version 1 record with delivery marks; keep it as it is if that fails."""
        done = frozenset(state.done) & frozenset(record.envelope.recipients)
        upgraded = replace(record, delivered=done, markable=True)
        try:
            self.spool.rewrite(upgraded, where)
        except SpoolError as exc:
            logger.warning(
                "%s: %s; delivering without in-place marks",
                record.queue_id,
                exc,
                extra=fields(queue_id=record.queue_id, reason=str(exc)),
            )
            return record
        return upgraded

    def _quarantine(self, queue_id: str, where: QueueState, why: str) -> None:
        logger.error(
            "%s: corrupt queue file (%s); moved to %s/",
            queue_id,
            why,
            QueueState.CORRUPT.value,
            extra=fields(queue_id=queue_id, reason=why, moved_to=QueueState.CORRUPT.value),
        )
        self.spool.move(queue_id, where, QueueState.CORRUPT)
