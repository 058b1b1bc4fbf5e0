"""The daemon (``alertd run``): builds every stage from the config and wires them in one
supervising nursery, as DESIGN.md draws it::

    sources --Event--> engine --Alert--> dispatch --outbox--> delivery (apprise)

Shutdown is nested nurseries, hypercorn style: intake (sources, signals) stops first; the
engine and dispatcher then finish what is already queued (closing each channel in turn), so no
accepted event or alert is lost; last, delivery gets ``[daemon] drain_timeout`` to empty the
outbox. What is still pending then stays in the outbox for the next start. A second stop
signal cuts the drain short.

Reload (SIGHUP) reads, checks and compiles the new file first (daemon/reload); whatever goes
wrong, on reading or applying, is one error line in the log and in the service status, READY=1
follows, and the old config keeps running. A good one is applied in place: rules keep their
state where they did not change, and only accounts whose settings changed reconnect.

What reads the accounts is a parameter (``intake``): the websocket sources for ``alertd run``,
a capture on a virtual clock for ``alertd replay``; every other stage is the same.
"""

from __future__ import annotations

import logging
import signal
from functools import partial
from pathlib import Path

import attrs
import trio

from alertd import clock, cluster
from alertd.config.model import Config
from alertd.daemon.control import ControlServer
from alertd.daemon.intake import Intake, IntakeFactory, websocket_sources
from alertd.daemon.logs import SecretMasker, iter_secrets, set_level
from alertd.daemon.metrics import Metrics, MetricsError, MetricsSink, NullMetrics
from alertd.daemon.reload import (
    NewConfig,
    RunningStages,
    failure_reason,
    read_new_config_in_thread,
)
from alertd.daemon.sdnotify import SdNotifier, run_watchdog
from alertd.daemon.signals import watch_signals
from alertd.daemon.status import format_status
from alertd.daemon.store_watch import drain_unless_away, for_dispatch, stop_waiting_when_cancelled
from alertd.dispatch.dispatcher import Dispatcher
from alertd.dispatch.muting import Muter
from alertd.dispatch.silences import Silences
from alertd.engine import Engine, EngineStatistics, RuleStateStore, run_engine
from alertd.engine.probe import ProbeAlert
from alertd.events import Alert, Event
from alertd.notify.apprise_notifier import AppriseNotifier
from alertd.notify.delivery import Delivery
from alertd.notify.notifier import Notifier
from alertd.sources import downtime
from alertd.sources.capture import Recorder
from alertd.store.backend import StoreError, open_store
from alertd.store.handoff import HANDOFF_CAPACITY, Handoff
from alertd.store.outbox import Outbox
from alertd.store.sql import Store

log = logging.getLogger(__name__)

# Events between the sources and the engine. Each account also has its own buffer (sources),
# so this only has to absorb the engine's scheduling jitter, not a whole burst.
EVENT_QUEUE = 4096
ALERT_QUEUE = 1024  # alerts between the engine and dispatch; dispatch only writes to SQLite
OBSERVE_INTERVAL = 1.0  # seconds between metrics updates from the stages' counters
STATUS_INTERVAL = 5.0  # seconds between STATUS= updates to systemd
PIPELINE_STOP_TIMEOUT = 5.0  # for the engine and dispatch to finish what is queued on stop


class StartupError(Exception):
    """The daemon cannot start; the message says what to fix."""


@attrs.frozen(kw_only=True)
class DaemonStatistics:
    """The daemon at one moment; ``engine`` is None before the engine exists."""

    engine: EngineStatistics | None
    last_alert_age: float | None  # trio seconds since the last alert fired
    reloads: int  # reloads applied
    reload_failures: int  # reloads that kept the previous config
    problem: str | None  # what the status line leads with (a failed reload)
    stopped_pending: int | None  # alerts a graceful stop left in the outbox


@attrs.define(eq=False)
class Daemon:
    """One running alertd. ``config_path`` is what SIGHUP re-reads (None: reload disabled,
    as in the demo). ``notifier`` defaults to apprise; tests and the demo may pass another."""

    config: Config
    state_dir: Path
    config_path: str | None = None
    record_dir: Path | None = None
    notifier: Notifier | None = None
    intake: IntakeFactory = websocket_sources
    drain_timeout: float | None = None  # None: the config's [daemon] drain_timeout
    # Once-a-second upkeep: metrics and status observation, the database's background WAL
    # checkpoints. Replay turns it off: on a virtual clock each is a wake-up (and a worker
    # thread) every virtual second, hours of them for a day's capture.
    housekeeping: bool = True
    sd: SdNotifier = attrs.field(factory=SdNotifier.from_env)
    masker: SecretMasker | None = None
    log_level_override: str | None = None
    handle_signals: bool = True
    problem: str | None = None  # shown in STATUS=, e.g. a failed reload
    last_alert: float | None = None  # trio clock
    metrics_address: tuple[str, int] | None = None  # where /metrics is served, once bound
    stopped_pending: int | None = None  # alerts a graceful stop left in the outbox
    stopped: trio.Event = attrs.field(factory=trio.Event)  # set once run() has finished
    _stop: trio.Event = attrs.field(factory=trio.Event)
    _stop_requests: int = 0
    _reloadable: bool = False  # between ready and the start of a stop
    _reloads: int = 0
    _reload_failures: int = 0
    _stages: RunningStages = attrs.field(factory=RunningStages)
    _root: trio.CancelScope | None = None
    _sources: Intake | None = None
    _engine: Engine | None = None
    _dispatcher: Dispatcher | None = None
    _delivery: Delivery | None = None
    _outbox: Outbox | None = None
    _metrics: MetricsSink = attrs.field(factory=NullMetrics)

    # -- the supervisor ------------------------------------------------------------------------

    async def run(self, *, task_status: trio.TaskStatus[Daemon] = trio.TASK_STATUS_IGNORED) -> None:
        """Run until ``request_stop`` (or SIGTERM/SIGINT); see the module docstring."""
        config = self.config
        db = self._open_database()
        try:
            with trio.CancelScope() as self._root:
                await self._run(config, db, task_status)
        finally:
            with trio.CancelScope(shield=True):
                await trio.to_thread.run_sync(db.close)
            self.stopped.set()

    async def _run(self, config: Config, db: Store, task_status: trio.TaskStatus[Daemon]) -> None:
        # Committed rows reach delivery in memory (store/handoff: bounded, then the table).
        outbox = self._outbox = Outbox(db, handoff=Handoff(capacity=HANDOFF_CAPACITY))
        engine = self._engine = Engine.from_config(
            config, state=RuleStateStore(db), wall=clock.wall_datetime
        )
        silences = Silences(db)
        muter = Muter(config, silences)  # one view, shared: dispatch and delivery honour it
        dispatcher = self._dispatcher = Dispatcher(config, for_dispatch(outbox), muter)
        notifier = self.notifier or AppriseNotifier(workers=config.dispatch.workers)
        if config.daemon.metrics_listen:
            self._metrics = Metrics()
        delivery = self._delivery = Delivery(
            config, outbox, notifier, muting=muter, metrics=self._metrics
        )
        recorder = Recorder(self.record_dir) if self.record_dir else None
        events_send, events_recv = trio.open_memory_channel[Event](EVENT_QUEUE)
        alerts_send, alerts_recv = trio.open_memory_channel[Alert](ALERT_QUEUE)
        sources = self._sources = self.intake(config, events_send, recorder)
        self._stages = RunningStages(
            engine=engine, dispatcher=dispatcher, delivery=delivery, intake=sources
        )

        async with trio.open_nursery() as tail:
            if self.housekeeping:
                await tail.start(outbox.upkeep)  # SQLite's checkpoints; PostgreSQL's claims
            await tail.start(delivery.run)
            if recorder is not None:
                await tail.start(recorder.run)
            listen = config.daemon.metrics_listen
            if listen and isinstance(self._metrics, Metrics):
                metrics = self._metrics
                metrics.declare_config(config)
                metrics.watch_accounts(lambda: sources.statistics().accounts)
                try:
                    host, port = await tail.start(metrics.serve, listen)
                except MetricsError as e:
                    raise StartupError(str(e)) from e
                self.metrics_address = (host, port)
            await tail.start(run_watchdog, self.sd)
            await tail.start((control := ControlServer()).serve, self, sources, outbox, delivery)
            beat = config.daemon.heartbeat
            if self.housekeeping and (beat or listen):  # dead-man's switch, /healthz; not replay
                from alertd.daemon import heartbeat

                try:
                    pinger = heartbeat.for_daemon(
                        beat, config=lambda: cluster.watched(self.config, sources),
                        sources=sources, outbox=outbox, delivery=delivery, events=events_send,
                        masker=self.masker,
                    )  # fmt: skip
                except heartbeat.HeartbeatError as e:
                    raise StartupError(str(e)) from e
                control.heartbeat = pinger if beat else None
                self._metrics.watch_health(pinger.healthz)  # /healthz: the heartbeat's verdict
                await tail.start(pinger.run)
            if self.handle_signals:
                # In the tail, which outlives intake: a second stop signal during the drain
                # must reach request_stop (and cut the drain short), not find the default
                # action restored and kill the process.
                await tail.start(watch_signals, self.reload, self.request_stop)
            async with trio.open_nursery() as pipeline:
                await pipeline.start(dispatcher.run, alerts_recv)
                await pipeline.start(
                    partial(
                        run_engine,
                        on_alert=self._count_alert,
                        assignments=cluster.assignments(sources),
                    ),
                    engine,
                    events_recv,
                    alerts_send,
                )
                async with trio.open_nursery() as intake:
                    if self.housekeeping:  # alertd's own downtime (before any session), metrics
                        intake.start_soon(stop_waiting_when_cancelled, db)
                        await intake.start(downtime.watch, db, sources, self._stop.is_set)
                        intake.start_soon(self._observe)
                        intake.start_soon(muter.keep_fresh, clock.wall)  # off an alert's way
                    await intake.start(sources.run)
                    log.info(
                        "daemon.ready accounts=%d rules=%d channels=%d state_dir=%s",
                        len(config.accounts),
                        len(config.rules),
                        len(config.channels),
                        self.state_dir,
                    )
                    self._reloadable = True
                    self.sd.ready(await self.status_line())
                    task_status.started(self)
                    await self._stop.wait()
                    self._reloadable = False
                    log.info("daemon.stopping phase=intake")
                    self.sd.stopping()
                    intake.cancel_scope.cancel()
                # Intake is closed: the engine drains the queue, then closes its output, and
                # dispatch writes every alert (and every held group) to the outbox.
                await events_send.aclose()
                pipeline.cancel_scope.deadline = trio.current_time() + PIPELINE_STOP_TIMEOUT
            if pipeline.cancel_scope.cancelled_caught:
                log.warning("daemon.pipeline_stop_timeout (held alerts stay in the outbox)")
            drain = self.drain_timeout
            drain = self.config.daemon.drain_timeout if drain is None else drain
            log.info("daemon.stopping phase=drain timeout=%.1f", drain)
            self.sd.extend_timeout(drain + PIPELINE_STOP_TIMEOUT)
            left = await drain_unless_away(delivery, db, trio.current_time() + drain)
            log.info("daemon.stopped pending=%d", left)
            self.stopped_pending = left
            tail.cancel_scope.cancel()

    @property
    def delivery_unfinished(self) -> bool:
        """Whether a delivery may still be running in a worker thread after ``run`` returned:
        delivery started, and no graceful stop emptied the outbox (a service that hangs, a
        second stop signal, a failed start)."""
        return self._delivery is not None and self.stopped_pending != 0

    def _open_database(self) -> Store:
        try:  # SQLite in the state directory, or PostgreSQL with [daemon] database
            return open_store(self.config.daemon, self.state_dir)
        except StoreError as e:
            raise StartupError(str(e)) from e

    def statistics(self) -> DaemonStatistics:
        age = None if self.last_alert is None else trio.current_time() - self.last_alert
        return DaemonStatistics(
            engine=None if self._engine is None else self._engine.statistics(),
            last_alert_age=age,
            reloads=self._reloads,
            reload_failures=self._reload_failures,
            problem=self.problem,
            stopped_pending=self.stopped_pending,
        )

    def _count_alert(self, alert: Alert) -> None:
        """Counts an alert on its way from the engine to dispatch."""
        if type(alert) is not ProbeAlert:  # the heartbeat's pipeline probe is no alert
            self.last_alert = trio.current_time()
            self._metrics.alert_fired(alert.rule)

    async def _observe(self) -> None:
        """Copies the stages' counters into metrics, and the status line to systemd."""
        next_status = trio.current_time()
        while True:
            box = await self._outbox.statistics() if self._outbox else None
            pending = box.pending if box else 0
            self._metrics.observe(
                dispatch=self._dispatcher.statistics() if self._dispatcher else None,
                pending=pending,
                reload_failures=self._reload_failures,
            )
            if trio.current_time() >= next_status:
                self.sd.status(await self.status_line(pending))
                next_status = trio.current_time() + STATUS_INTERVAL
            await trio.sleep(OBSERVE_INTERVAL)

    async def status_line(self, pending: int | None = None) -> str:
        accounts = [a.name for a in cluster.watched_accounts(self.config, self._sources)]
        stats = self._sources.statistics().accounts if self._sources else {}
        down = [name for name in accounts if not (name in stats and stats[name].connected)]
        if pending is None:
            pending = await self._outbox.pending_count() if self._outbox else 0
        age = None if self.last_alert is None else trio.current_time() - self.last_alert
        return format_status(
            connected=len(accounts) - len(down),
            accounts=len(accounts),
            pending=pending,
            last_alert_age=age,
            down=down,
            problem=self.problem,
        )

    # -- requests from signals (or tests) ------------------------------------------------------

    def request_stop(self, signum: signal.Signals | None = None) -> None:
        """Begin a graceful stop; a second request cancels the drain and stops at once."""
        self._stop_requests += 1
        name = signum.name if signum is not None else "request"
        if self._stop_requests == 1:
            log.info("daemon.stop signal=%s", name)
            self._stop.set()
        else:
            log.warning("daemon.stop_now signal=%s (pending alerts stay in the outbox)", name)
            if self._root is not None:
                self._root.cancel()

    async def reload(self) -> bool:
        """Re-read ``config_path`` and apply it; on any failure keep the running config, log
        one error line and say so in the status. Returns whether the new config was applied.
        Every reload that began (RELOADING=1) ends with READY=1, whatever happened."""
        if self.config_path is None:
            log.warning("reload.unsupported (no config file)")
            return False
        if not self._reloadable:
            log.warning("reload.skipped (the daemon is starting or stopping)")
            return False
        self.sd.reloading()
        applied = False
        try:
            applied = await self._reload(self.config_path)
        except Exception as exc:  # whatever it was, the old config runs on: say why, once
            self._reload_failures += 1
            reason = failure_reason(exc)
            self.problem = f"reload failed, previous config kept: {reason}"
            log.error("reload.failed (previous config kept): %s", reason)
        await self._ready()
        return applied

    async def _reload(self, path: str) -> bool:
        new = await read_new_config_in_thread(path)
        if self._stop.is_set():  # a stop began while the file was read
            log.warning("reload.skipped (the daemon is stopping)")
            return False
        old = NewConfig(config=self.config, rules=self._engine.rules if self._engine else [])
        try:
            await self._apply(new)
        except BaseException:
            with trio.CancelScope(shield=True):
                await self._restore(old)
            raise
        self._reloads += 1
        self.problem = None
        config = new.config
        log.info(
            "reload.done accounts=%d rules=%d channels=%d",
            len(config.accounts),
            len(config.rules),
            len(config.channels),
        )
        return True

    async def _apply(self, new: NewConfig) -> None:
        config = new.config
        if self.masker is not None:
            self.masker.add(*iter_secrets(config))
        if self.log_level_override is None:
            set_level(config.daemon.log_level)
        if config.daemon.state_dir != self.config.daemon.state_dir:
            log.warning("reload.ignored key=daemon.state_dir (takes effect on restart)")
        self.config = config
        await self._stages.switch(new)

    async def _restore(self, old: NewConfig) -> None:
        """Put everything back on ``old`` after a failed apply."""
        self.config = old.config
        if self.log_level_override is None:
            set_level(old.config.daemon.log_level)
        await self._stages.restore(old)

    async def _ready(self) -> None:
        """READY=1 with the status line; a status that cannot be read (the database failing)
        still gives READY=1, with the problem alone."""
        try:
            status = await self.status_line()
        except Exception as exc:
            log.error("status.failed: %s", failure_reason(exc))
            status = self.problem or "status unavailable"
        self.sd.ready(status)
