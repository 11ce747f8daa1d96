"""The running relay: wires listeners, cleanup, the spool or capture store, and delivery."""

from __future__ import annotations

import asyncio
import dataclasses
import enum
import functools
import signal
import socket
import threading
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from relay.capture.maildir import CaptureStore
from relay.capture.webhooks import Webhooks
from relay.cleanup.filters import Simulation, simulate
from relay.cleanup.sources import DirectorySource, load_filter_sets
from relay.config import RelayConfig
from relay.credentials import Credentials, read_credentials
from relay.deliver.dispatch import Dispatcher
from relay.deliver.dkim import SigningKey, planned, sign_record
from relay.deliver.release import Releaser
from relay.errors import ConfigError, RelayError
from relay.log import fields, logger
from relay.metrics import Metrics
from relay.model import Envelope, new_queue_id
from relay.processes import TABLE, ProcessCollector, receiving
from relay.queue.control import ControlServer
from relay.queue.gauges import spool_collectors
from relay.queue.manager import QueueManager
from relay.queue.slots import Slots
from relay.queue.spool import Spool
from relay.queue.wakeup import WakeReceiver, WakeSender
from relay.receive.domains import DomainCheck, domain_check
from relay.receive.faults import Faults
from relay.receive.handler import RelayHandler
from relay.receive.options import TcpListener
from relay.receive.server import Listeners
from relay.record import DeliveryState, Record
from relay.resolver import Resolver
from relay.web.deps import Health, WebDeps, WebSettings
from relay.web.server import WebServer

__all__ = [
    "Relay",
    "Role",
    "Split",
    "announce",
    "check_reload",
    "refuse_reload",
    "reloader",
    "restart_needed",
    "restart_only_kept",
    "serve",
    "web_settings",
]


class _SpoolSink:
    """Relay mode: accepted messages go to the spool, and delivery is told (the queue
    manager in this process, or the delivery process woken by a datagram)."""

    def __init__(
        self,
        spool: Spool,
        notify: Callable[[str], None],
        dkim: Callable[[], Sequence[SigningKey]],
    ) -> None:
        self.spool = spool
        self.notify = notify
        self.dkim = dkim
        self.slots = Slots(spool)

    def new_id(self) -> str:
        return self.slots.take() or new_queue_id()

    def unused(self, queue_id: str) -> None:
        self.slots.unused(queue_id)

    def accept(self, record: Record) -> None:
        signed = planned(record, self.dkim())  # signed as it goes out
        self.spool.accept(signed, reserved=self.slots.used(record.queue_id))

    def accepted(self, queue_id: str) -> None:
        self.notify(queue_id)


class _CaptureSink:
    """Capture mode: accepted messages go straight to the Maildir, signed as they would go out."""

    def __init__(self, store: CaptureStore, dkim: Callable[[], Sequence[SigningKey]]) -> None:
        self.store = store
        self.dkim = dkim

    def new_id(self) -> str:
        return new_queue_id()

    def unused(self, queue_id: str) -> None:
        pass

    def accept(self, record: Record) -> None:
        self.store.store(sign_record(record, self.dkim()))

    def accepted(self, queue_id: str) -> None:
        logger.info(
            "%s: captured in %s",
            queue_id,
            self.store.root,
            extra=fields(queue_id=queue_id, path=str(self.store.root)),
        )


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


class Role(enum.Enum):
    """What one process of the relay runs."""

    #: Everything: capture mode, ``workers: 0``, and the tests.
    ALL = "all"
    #: A receive worker of a split relay: listeners, cleanup, the spool write.
    RECEIVE = "receive"
    #: The delivery process of a split relay: queue, control socket, capture copy, web.
    DELIVER = "deliver"


@dataclass(frozen=True, slots=True, kw_only=True)
class Split:
    """What the supervisor gives one process of a split relay (:mod:`relay.supervisor`)."""

    role: Role
    #: The listening sockets, bound once by the supervisor (receive workers serve them).
    sockets: tuple[socket.socket, ...] = ()
    #: Their addresses, for ``/readyz`` in the delivery process.
    bound: tuple[str, ...] = ()
    #: A receive worker's end of the wake-up socket pair, or the delivery process's.
    wake: socket.socket | None = None
    #: Where the supervisor keeps the process table.
    run: Path | None = None
    #: Where every process keeps its counts (prometheus_client's multiprocess files).
    metrics: Path | None = None


class Relay:
    """All parts of a running relay (or of one process of it), started and stopped together."""

    def __init__(self, config: RelayConfig, split: Split | None = None) -> None:
        self.split = split
        self.role = split.role if split is not None else Role.ALL
        self.credentials = self.credentials_of(config)
        self.config = config
        receives, delivers = self.role != Role.DELIVER, self.role != Role.RECEIVE
        self.metrics = Metrics(shared=split.metrics if split else None)
        self.capture = (
            CaptureStore(
                config.capture.path,
                max_messages=config.capture.max_messages,
                max_age=config.capture.max_age,
            )
            if config.capture_enabled and delivers
            else None
        )
        self.manager: QueueManager | None = None
        self.control: ControlServer | None = None
        self.wake: WakeReceiver | None = None
        resolver = Resolver(config.dns)
        if config.upstream is not None and delivers:
            spool = Spool(config.queue.path)
            self.manager = QueueManager(
                spool,
                config.upstream,
                config.queue.retry,
                hostname=config.hostname,
                on_delivered=self._keep_copy if self.capture else None,
                metrics=self.metrics,
                dispatcher=Dispatcher(
                    config.upstreams,
                    hostname=config.hostname,
                    state=config.queue.path / "quota",
                    hold=config.queue.retry.min_backoff,
                    dns=config.dns,
                    dkim=self.credentials.dkim_keys,
                    secrets=self.credentials.upstream,
                ),
            )
            resolver = self.manager.dispatcher.resolver
            self.metrics.watch(*spool_collectors(spool, self.manager.dispatcher.quotas))
            if split is not None and split.run is not None:
                self.metrics.watch(ProcessCollector(split.run / TABLE))
            self.control = ControlServer(spool.root, self.manager.apply, locked=split is None)
            if split is not None and split.wake is not None:
                self.wake = WakeReceiver(split.wake, self.manager.submit, self._rescan)
        self.releaser: Releaser | None = None
        if delivers:
            self.releaser = Releaser(
                hostname=config.hostname,
                state=config.queue.path / "quota",
                shared=self.manager.dispatcher if self.manager else None,
            )
            self._reconfigure_releaser(config)
        self.directory = DirectorySource.from_options(config.notification)
        self.faults = Faults(config.capture.faults) if config.capture_mode else None
        self.webhooks = (
            Webhooks(
                config.capture.webhooks,
                self.capture,
                timezone=config.filters.timezone,
                secrets=self.credentials.webhook_secrets,
            )
            if self.capture is not None and config.capture.webhooks
            else None
        )
        self.handler: RelayHandler | None = None
        self.listeners: Listeners | None = None
        self.sink = self._sink(config) if receives else None
        if self.sink is not None:
            self.handler = RelayHandler(
                limits=config.limits,
                options=lambda: self.config.notification,  # read at each use: reload replaces it
                directory=lambda: self.directory.current(),
                sink=self.sink,
                account=config.upstream.username if config.upstream else None,
                simulate=_simulator(config),
                metrics=self.metrics,
                check_domain=self._domain_check(config, resolver),
                relaying=config.upstream is not None,
                keep_refused=config.capture_mode,
                faults=self.faults,
                inline_when_alone=self.role == Role.RECEIVE,
            )
            self.listeners = Listeners(
                config.listen,
                self.handler,
                networks=config.allowed_networks,
                limits=config.limits,
                hostname=config.hostname,
                tls=config.listen_tls,
                auth=config.listen_auth,
                tls_context=self.credentials.listen_tls,
                users=self.credentials.listen_users,
            )
        self._resolver = resolver
        self.bound: list[str] = []
        self.web: WebServer | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    def _sink(self, config: RelayConfig) -> _SpoolSink | _CaptureSink:
        """Where accepted messages go: the spool (telling delivery) or the capture store."""
        if config.upstream is None:
            assert self.capture is not None
            return _CaptureSink(self.capture, self._dkim)
        if self.manager is not None:
            return _SpoolSink(self.manager.spool, self.manager.submit, self._dkim)
        assert self.split is not None
        assert self.split.wake is not None
        return _SpoolSink(Spool(config.queue.path), WakeSender(self.split.wake).notify, self._dkim)

    def credentials_of(self, config: RelayConfig) -> Credentials:
        """What ``config``'s secret sources hold; a receive worker never logs in upstream,
        so it never reads (or holds) the upstream's secrets."""
        return read_credentials(config, upstream=self.role != Role.RECEIVE)

    def _dkim(self) -> tuple[SigningKey, ...]:
        """The signing keys in force (reload replaces them)."""
        return self.credentials.dkim_keys

    def _reconfigure_releaser(self, config: RelayConfig) -> None:
        if self.releaser is not None:
            self.releaser.reconfigure(
                config.capture.release.upstream or config.upstream,
                hold=config.queue.retry.min_backoff,
                dns=config.dns,
                dkim=self.credentials.dkim_keys,
                secrets=self.credentials.upstream,
            )

    def _domain_check(self, config: RelayConfig, resolver: Resolver) -> DomainCheck | None:
        """The RCPT-time recipient-domain check (sharing the delivery's DNS cache when
        delivery runs in this process)."""
        if config.upstream is None:
            return None
        return domain_check(config.dns, config.upstreams, resolver)

    def _background(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _rescan(self) -> None:
        assert self.manager is not None
        self._background(self.manager.rescan())

    async def _refresh_directory(self) -> None:
        """Keep the aliases and Trac users current, in a thread: the SMTP hooks only read
        the snapshot (reload replaces the source; this follows it)."""
        while True:
            await asyncio.sleep(_DIRECTORY_REFRESH)
            await asyncio.to_thread(self.directory.refresh)

    async def _keep_copy(self, record: Record, state: DeliveryState) -> None:
        assert self.capture is not None
        timeline = [attempt.as_dict() for attempt in state.log]
        await asyncio.to_thread(self.capture.store, record, timeline=timeline)

    async def start(self) -> None:
        """Prepare the storage, start delivery, then open the listeners."""
        if self.capture is not None:
            await asyncio.to_thread(self.capture.create)
            self.capture.claim()  # the store is ours from here on
        if self.webhooks is not None:
            await self.webhooks.start()
        if self.manager is not None:
            assert self.control is not None
            await self.control.start()  # the queue is ours from here on
            await asyncio.to_thread(self.manager.spool.create)
            if self.split is None:  # else the supervisor did, before any worker started
                await asyncio.to_thread(self.manager.spool.recover)
            await self.manager.start()
            if self.wake is not None:
                self.wake.start()
        if self.listeners is not None:
            if isinstance(self.sink, _SpoolSink):
                await asyncio.to_thread(self.sink.slots.start)
            self._background(self._refresh_directory())
            sockets = self.split.sockets if self.split is not None else None
            self.bound = await self.listeners.start(sockets)
        elif self.split is not None:
            self.bound = list(self.split.bound)
        if self.capture is not None:
            threading.Thread(target=self.capture.catch_up, name="capture", daemon=True).start()
        if self.config.web.enabled and self.role != Role.RECEIVE:
            self.web = await self._start_web()
        if self.role == Role.ALL:
            announce(self.config, self.bound, self.credentials)

    async def stop(self) -> None:
        """Close the listeners, then stop delivery (queued mail stays on disk)."""
        self.bound = []
        if self.web is not None:
            await self.web.stop()
            self.web = None
        if self.listeners is not None:
            await self.listeners.stop()
            if isinstance(self.sink, _SpoolSink):
                await asyncio.to_thread(self.sink.slots.stop)
        for task in self._tasks:
            task.cancel()
        if self.webhooks is not None:
            await self.webhooks.stop()
        if self.wake is not None:
            self.wake.stop()
        if self.manager is not None:
            await self.manager.stop()
        if self.control is not None:
            await self.control.stop()
        if self.capture is not None:
            self.capture.release()

    def web_deps(self) -> WebDeps:
        """What the page and API serve: this relay's parts, never the relay itself."""
        return WebDeps(
            capture=self.capture,
            spool=self.manager.spool if self.manager else None,
            releaser=self.releaser,
            metrics=self.metrics,
            health=self._health,
            queue_actions=self.manager.apply if self.manager else None,
            faults=self.faults,
        )

    def _health(self) -> Health:
        manager = self.manager
        storage = manager.spool.root if manager else self.capture.root  # type: ignore[union-attr]
        listening = tuple(self.bound)
        if self.split is not None and self.split.run is not None:
            listening = listening if receiving(self.split.run / TABLE) else ()
        return Health(
            listening=listening,
            storage=storage,
            largest=self.config.limits.max_message_size,
            failing_since=manager.failing_since if manager else None,
        )

    async def _start_web(self) -> WebServer | None:
        """The page and API; mail keeps flowing if the port is taken."""
        server = WebServer(
            self.web_deps(), web_settings(self.config, self.credentials), self.config.web.listen
        )
        try:
            await server.start()
        except OSError as exc:
            logger.error(
                "web: cannot listen on %s: %s; no page or API",
                server.listen,
                exc,
                extra=fields(listen=str(server.listen), reason=str(exc)),
            )
            return None
        logger.info("web: page and API on %s", server.url, extra=fields(url=server.url))
        return server

    def reload(self, config: RelayConfig, credentials: Credentials | None = None) -> None:
        """Put ``config`` (and its ``credentials``, read here if not given) in force for new
        messages and the next delivery attempts.

        Raises :class:`~relay.errors.ConfigError` (and changes nothing) when the new
        aliases or filter rules do not load or the mode would change. Connections stay
        open; settings that only a restart can apply are named in a warning.
        """
        directory, simulate = check_reload(self.config, config)
        credentials = credentials or self.credentials_of(config)
        restart = restart_needed(self.config, config)
        self.config, self.directory, self.credentials = config, directory, credentials
        if self.listeners is not None:
            self.listeners.reconfigure(
                limits=config.limits,
                tls=config.listen_tls,
                auth=config.listen_auth,
                tls_context=credentials.listen_tls,
                users=credentials.listen_users,
            )
        if self.manager is not None and config.upstream is not None:
            self.manager.reconfigure(
                config.upstream,
                config.queue.retry,
                upstreams=config.upstreams,
                dns=config.dns,
                dkim=self.credentials.dkim_keys,
                secrets=credentials.upstream,
            )
            self._resolver = self.manager.dispatcher.resolver
        elif self._resolver.config != config.dns:
            self._resolver = Resolver(config.dns)
        self._reconfigure_releaser(config)
        if self.web is not None:
            self.web.reconfigure(web_settings(config, credentials))
        if self.handler is not None:
            self.handler.reconfigure(
                limits=config.limits,
                account=config.upstream.username if config.upstream else None,
                simulate=simulate,
                check_domain=self._domain_check(config, self._resolver),
            )
        if self.role != Role.RECEIVE:  # one line per reload, not one per worker
            logger.info(
                "reload: configuration from %s in force",
                config.source,
                extra=fields(path=str(config.source)),
            )
            if restart:
                logger.warning(
                    "reload: a restart is needed to apply %s",
                    ", ".join(restart),
                    extra=fields(settings=", ".join(restart)),
                )


def check_reload(
    running: RelayConfig, new: RelayConfig
) -> tuple[DirectorySource, Callable[[Envelope, bytes], Simulation] | None]:
    """What a reload to ``new`` reads besides the config and its credentials: the directory
    and the filter simulation. Raises what refuses it: a switch between capture and relay
    mode (only a restart does that), or aliases or filter rules that do not load.

    The supervisor of a split relay runs it before handing ``new`` on, so that no process
    refuses a config the supervisor would give the next process it starts.
    """
    if (new.upstream is None) != (running.upstream is None):
        raise ConfigError(
            "switching between capture and relay mode needs a restart", file=new.source
        )
    return DirectorySource.from_options(new.notification), _simulator(new)


def restart_needed(running: RelayConfig, new: RelayConfig) -> list[str]:
    """The settings changed from ``running`` to ``new`` that a reload cannot apply."""
    return [name for name in _RESTART_ONLY if _section(running, name) != _section(new, name)]


def restart_only_kept(running: RelayConfig, new: RelayConfig) -> RelayConfig:
    """``new`` with the settings only a restart applies taken from ``running``: what a
    process of a split relay started after a reload gets, so that it runs as the others do."""
    for name in _RESTART_ONLY:
        new = _with(new, name.split("."), _section(running, name))
    return new


def _with(value: Any, path: Sequence[str], setting: object) -> Any:
    """``value`` with the setting at ``path`` replaced (a section that is None stays so)."""
    if value is None:
        return None
    head, *rest = path
    inner = _with(getattr(value, head), rest, setting) if rest else setting
    return dataclasses.replace(value, **{head: inner})


def announce(config: RelayConfig, bound: Sequence[str], credentials: Credentials) -> None:
    """Log where the relay listens, its mode, and how to point Trac at it."""
    for line in config.trac_ini_report:
        logger.info("trac.ini: %s", line, extra=fields(note=line))
    for address in bound:
        logger.info("smtp: listening on %s", address, extra=fields(listen=address))
    if config.upstream is None:
        logger.info(
            "capture mode: no upstream configured; every message is stored in %s",
            config.capture.path,
            extra=fields(path=str(config.capture.path)),
        )
    else:
        logger.info(
            "relay mode: delivering to %s (tls=%s), queue in %s",
            ", ".join(map(str, config.upstreams)),
            config.upstream.tls_mode,
            config.queue.path,
            extra=fields(
                upstream=", ".join(map(str, config.upstreams)),
                tls=config.upstream.tls_mode,
                path=str(config.queue.path),
            ),
        )
    tcp = [listener for listener in config.listen if isinstance(listener, TcpListener)]
    trac = ""
    if config.listen_tls is not None:  # config loading made sure there is a TCP listener
        auth = config.listen_auth
        needs_auth = auth is not None and not auth.accept_any
        required = config.listen_tls.required or needs_auth
        note = "; MAIL needs AUTH, offered inside TLS" if needs_auth else ""
        if auth is not None and auth.accept_any:
            note = "; any AUTH login is accepted inside TLS (capture mode)"
        logger.info(
            "smtp: TCP listeners offer STARTTLS (%s, certificate %s)%s",
            "required" if required else "optional",
            credentials.listen_certificate,
            note,
            extra=fields(
                tls="required" if required else "optional",
                certificate=str(credentials.listen_certificate),
            ),
        )
        trac = ", use_tls = true" + (", smtp_user, smtp_password" if config.listen_auth else "")
    if tcp and bound:
        host, port = bound[0].rsplit(":", 1)
        logger.info(
            "point Trac at it: in trac.ini [notification] set smtp_enabled = true, "
            "smtp_server = %s, "
            "smtp_port = %s%s",
            host.strip("[]"),
            port,
            trac,
            extra=fields(host=host.strip("[]"), port=port),
        )


#: Seconds between checks of the aliases file and Trac's database for changes.
_DIRECTORY_REFRESH = 1.0

#: Settings read once at start; a reload that changes them says a restart is needed.
_RESTART_ONLY = (
    "listen",
    "allowed_networks",
    "hostname",
    "queue.path",
    "capture",
    "upstream.connections",
    "web.enabled",
    "web.listen",
    "workers",
)


def web_settings(config: RelayConfig, credentials: Credentials) -> WebSettings:
    """The settings of ``config`` the web app reads per request."""
    return WebSettings(
        web=config.web,
        timezone=config.filters.timezone,
        release_allowed=config.capture.release.allowed,
        users=credentials.web_users,
    )


def _section(config: RelayConfig, name: str) -> object:
    value: object = config
    for part in name.split("."):
        value = getattr(value, part, None)
    return value


async def serve(config: RelayConfig, *, reload: Callable[[], RelayConfig] | None = None) -> None:
    """Run the relay until SIGTERM or SIGINT; on SIGHUP, put ``reload()``'s config in force.

    A config that does not load or apply is refused with its error logged, and the one in
    force stays.
    """
    relay = Relay(config)
    await relay.start()
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stopping.set)
    if reload is not None:

        async def apply(config: RelayConfig, credentials: Credentials) -> None:
            relay.reload(config, credentials)

        loop.add_signal_handler(signal.SIGHUP, reloader(apply, reload))
    await stopping.wait()
    logger.info("stopping")
    await relay.stop()


def reloader(
    apply: Callable[[RelayConfig, Credentials], Awaitable[None]], load: Callable[[], RelayConfig]
) -> Callable[[], None]:
    """The SIGHUP handler: load the config and read its credentials in a thread (that may
    run a password command), then ``apply`` them; what does not load or apply is logged and
    changes nothing."""
    running: set[asyncio.Task[None]] = set()

    def read() -> tuple[RelayConfig, Credentials]:
        config = load()
        return config, read_credentials(config)

    async def reload_now() -> None:
        try:
            await apply(*await asyncio.to_thread(read))
        except (RelayError, OSError) as exc:
            refuse_reload(exc)

    def on_hangup() -> None:
        logger.info("reload: SIGHUP received")
        task = asyncio.get_running_loop().create_task(reload_now())
        running.add(task)
        task.add_done_callback(running.discard)

    return on_hangup


def refuse_reload(error: Exception) -> None:
    """Log why a reload was refused (the configuration in force stays)."""
    logger.error(
        "reload: refused, keeping the configuration in force: %s",
        error,
        extra=fields(reason=str(error)),
    )
