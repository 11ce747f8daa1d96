"""The running relay: wires listeners, cleanup, the spool or capture store, and delivery."""

from __future__ import annotations

import asyncio
import functools
import signal
from collections.abc import Callable

from relay.capture.maildir import CaptureStore
from relay.cleanup.filters import Simulation, simulate
from relay.cleanup.sources import DirectorySource, load_filter_sets
from relay.config import RelayConfig, TcpListener
from relay.log import logger
from relay.model import Envelope
from relay.queue.manager import QueueManager
from relay.queue.record import DeliveryState, Record
from relay.queue.spool import Spool
from relay.receive.handler import RelayHandler
from relay.receive.server import Listeners

__all__ = ["Relay", "serve"]


class _SpoolSink:
    """Relay mode: accepted messages go to the spool and are handed to the queue manager."""

    def __init__(self, spool: Spool, manager: QueueManager) -> None:
        self.spool = spool
        self.manager = manager

    def accept(self, record: Record) -> None:
        self.spool.accept(record)

    def accepted(self, queue_id: str) -> None:
        self.manager.submit(queue_id)


class _CaptureSink:
    """Capture mode: accepted messages go straight to the Maildir."""

    def __init__(self, store: CaptureStore) -> None:
        self.store = store

    def accept(self, record: Record) -> None:
        self.store.store(record)

    def accepted(self, queue_id: str) -> None:
        logger.info("%s: captured in %s", queue_id, self.store.root)


def _simulator(config: RelayConfig) -> Callable[[Envelope, bytes], Simulation] | None:
    """The per-recipient filter simulation the config asks for, or None.

    ``enforce: [delete]`` only acts in relay mode: capture mode keeps every message to show
    what the filters would do.
    """
    sets = load_filter_sets(config.filters, file=config.source)
    if not sets:
        return None
    enforce = "delete" in config.filters.enforce and not config.capture_mode
    return functools.partial(
        simulate, sets=sets, timezone=config.filters.timezone, enforce_delete=enforce
    )


class Relay:
    """All parts of a running relay, started and stopped together."""

    def __init__(self, config: RelayConfig) -> None:
        self.config = config
        self.capture = CaptureStore(config.capture.path) if config.capture_enabled else None
        self.manager: QueueManager | None = None
        if config.upstream is not None:
            spool = Spool(config.queue.path)
            self.manager = QueueManager(
                spool,
                config.upstream,
                config.queue.retry,
                hostname=config.hostname,
                on_delivered=self._keep_copy if self.capture else None,
            )
            sink: _SpoolSink | _CaptureSink = _SpoolSink(spool, self.manager)
        else:
            assert self.capture is not None
            sink = _CaptureSink(self.capture)
        self.directory = DirectorySource.from_options(config.notification)
        handler = RelayHandler(
            limits=config.limits,
            options=lambda: config.notification,
            directory=self.directory.current,
            sink=sink,
            account=config.upstream.username if config.upstream else None,
            simulate=_simulator(config),
        )
        self.listeners = Listeners(
            config.listen,
            handler,
            networks=config.allowed_networks,
            limits=config.limits,
            hostname=config.hostname,
        )
        self.bound: list[str] = []

    async def _keep_copy(self, record: Record, state: DeliveryState) -> None:
        assert self.capture is not None
        timeline = [attempt.as_dict() for attempt in state.log]
        await asyncio.to_thread(self.capture.store, record, timeline=timeline)

    async def start(self) -> None:
        """Prepare the storage, start delivery, then open the listeners."""
        if self.capture is not None:
            await asyncio.to_thread(self.capture.create)
        if self.manager is not None:
            await asyncio.to_thread(self.manager.spool.create)
            await self.manager.start()
        self.bound = await self.listeners.start()
        self._announce()

    async def stop(self) -> None:
        """Close the listeners, then stop delivery (queued mail stays on disk)."""
        await self.listeners.stop()
        if self.manager is not None:
            await self.manager.stop()

    def _announce(self) -> None:
        config = self.config
        for line in config.trac_ini_report:
            logger.info("trac.ini: %s", line)
        for address in self.bound:
            logger.info("smtp: listening on %s", address)
        if config.upstream is None:
            logger.info(
                "capture mode: no upstream configured; every message is stored in %s",
                config.capture.path,
            )
        else:
            logger.info(
                "relay mode: delivering to %s (tls=%s), queue in %s",
                config.upstream,
                config.upstream.tls,
                config.queue.path,
            )
        tcp = [listener for listener in config.listen if isinstance(listener, TcpListener)]
        if tcp:
            host, port = self.bound[0].rsplit(":", 1)
            logger.info(
                "point Trac at it: in trac.ini [notification] set smtp_enabled = true, "
                "smtp_server = %s, "
                "smtp_port = %s",
                host.strip("[]"),
                port,
            )


async def serve(config: RelayConfig) -> None:
    """Run the relay until SIGTERM or SIGINT."""
    relay = Relay(config)
    await relay.start()
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stopping.set)
    await stopping.wait()
    logger.info("stopping")
    await relay.stop()
