"""``Sources``: one supervised session task per enabled account, and reload.

Each account runs in its own cancel scope inside the supervisor's nursery, so one account can
be stopped or restarted (``update``) without touching the others. A session that crashes on
a bug is logged with its traceback, reported as ``stream.error`` and started again after a
backoff delay: one account's bug must not blind alertd to the other accounts.

An account keeps its ``StreamHealth`` (with the decoder: the orders and balances it has seen,
and an outage not yet reported) and its ``OutBuffer`` (the events not yet forwarded) across
restarts of its session, so a restart is neither a second ``order.placed`` nor a blind
window: it is reported like any reconnect (``stream.disconnected``, ``stream.connected``,
``stream.gap``). Both go when the account is removed; a changed ``exchange`` starts stream
health afresh (its counters aside) and keeps only the events still to be forwarded.
"""

from __future__ import annotations

import contextlib
import logging
import random
from collections.abc import Callable, Mapping, Sequence

import attrs
import trio

from alertd.config.model import AccountSettings
from alertd.events import Event, StreamError
from alertd.protocols import Decoder, decoder_for
from alertd.sources.admission import Admission
from alertd.sources.backoff import Backoff
from alertd.sources.buffer import OutBuffer
from alertd.sources.capture import Recorder
from alertd.sources.health import StreamHealth
from alertd.sources.keepalive import Keepalive
from alertd.sources.session import (
    AccountStatistics,
    Session,
    SessionConfigError,
    account_statistics,
    now_utc,
)
from alertd.sources.streams import stream_fact

log = logging.getLogger(__name__)

STOP_TIMEOUT = 10.0  # seconds to wait for a stopped session to finish closing
CRASH_BACKOFF_INITIAL = 1.0  # seconds before restarting a session that crashed on a bug
CRASH_BACKOFF_MAX = 60.0

DecoderFactory = Callable[[str, str], Decoder]  # (exchange, account) -> a fresh decoder


@attrs.define(eq=False)
class _Kept:
    """What an account keeps across restarts of its session."""

    health: StreamHealth
    buffer: OutBuffer


@attrs.frozen(kw_only=True)
class SourcesStatistics:
    """Every started account's statistics, by account name."""

    accounts: Mapping[str, AccountStatistics]


@attrs.define(eq=False)
class _Running:
    settings: AccountSettings
    scope: trio.CancelScope
    done: trio.Event = attrs.field(factory=trio.Event)


@attrs.define(eq=False)
class Sources:
    """Runs a session for every enabled account in ``accounts``; all send on ``send``.

    ``statistics()`` shows each started account's counters (they survive a restart of the
    account and go away when the account is removed). ``run`` reports ready once every session
    task has started (not connected: connecting may take a while and is reported by events).
    On cancellation all sessions close their connections and ``run`` returns once they have.
    """

    accounts: Sequence[AccountSettings]
    send: trio.MemorySendChannel[Event]
    recorder: Recorder | None = None
    decoder_factory: DecoderFactory = decoder_for
    # Called with a new account's StreamHealth before its first session (sources/downtime
    # tells it alertd's own downtime there).
    on_new_account: Callable[[StreamHealth], None] | None = None
    rng: random.Random = attrs.field(factory=random.Random)
    # The limit on new connections per exchange endpoint every session passes (None: none).
    admission: Admission | None = None
    # Pings every account's connection, from one task (sources/keepalive).
    keepalive: Keepalive = attrs.field(factory=Keepalive)
    _running: dict[str, _Running] = attrs.field(factory=dict)
    _kept: dict[str, _Kept] = attrs.field(factory=dict)
    _nursery: trio.Nursery | None = None

    def healths(self) -> dict[str, StreamHealth]:
        """Every started account's stream health, by account name."""
        return {name: kept.health for name, kept in self._kept.items()}

    def statistics(self) -> SourcesStatistics:
        accounts = {n: account_statistics(k.health, k.buffer) for n, k in self._kept.items()}
        return SourcesStatistics(accounts=accounts)

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        async with trio.open_nursery() as nursery:
            await nursery.start(self.keepalive.run)
            self._nursery = nursery
            try:
                for settings in self.accounts:
                    if settings.enabled:
                        await self._start(settings)
                task_status.started()
                await trio.sleep_forever()
            finally:
                self._nursery = None

    async def update(self, accounts: Sequence[AccountSettings]) -> None:
        """Apply a reloaded config: stop removed or disabled accounts, restart the ones whose
        settings changed, start new ones; leave unchanged ones connected."""
        wanted = {a.name: a for a in accounts if a.enabled}
        for name, running in list(self._running.items()):
            if wanted.get(name) != running.settings:
                log.info("sources.%s account=%s", "restart" if name in wanted else "stop", name)
                kept = self._kept.get(name)
                if kept is not None:
                    kept.health.restart_reason = "account reloaded with changed settings"
                await self._stop(name)
        for name in set(self._kept) - set(wanted):
            del self._kept[name]
        self.accounts = list(accounts)
        for name, settings in wanted.items():
            if name not in self._running:
                await self._start(settings)

    async def _start(self, settings: AccountSettings) -> None:
        if self._nursery is None:
            raise RuntimeError("Sources.update() called while Sources.run() is not running")
        await self._nursery.start(self._supervise, settings)

    async def _stop(self, name: str) -> None:
        running = self._running.pop(name)
        running.scope.cancel()
        with trio.move_on_after(STOP_TIMEOUT) as timer:
            await running.done.wait()
        if timer.cancelled_caught:
            log.error("sources.stop_timeout account=%s timeout=%.0f", name, STOP_TIMEOUT)

    async def _supervise(
        self, settings: AccountSettings, *, task_status: trio.TaskStatus[None]
    ) -> None:
        name = settings.name
        running = _Running(settings, trio.CancelScope())
        self._running[name] = running
        kept = self._kept.get(name)
        if kept is None or kept.health.exchange != settings.exchange:
            # A new exchange starts from nothing but the events still to be forwarded (and the
            # counters, which metrics take as ever growing).
            health = StreamHealth(name, self.decoder_factory(settings.exchange, name))
            if kept is None:
                buffer = OutBuffer(exchange=settings.exchange, account=name, capacity=0)
                if self.on_new_account is not None:
                    self.on_new_account(health)
            else:
                health.carry_counts_from(kept.health)
                buffer = kept.buffer
                buffer.exchange = settings.exchange
            kept = self._kept[name] = _Kept(health, buffer)
        crash_backoff = Backoff(
            initial=CRASH_BACKOFF_INITIAL,
            maximum=CRASH_BACKOFF_MAX,
            stable_after=settings.stable_after,
            rng=self.rng,
        )
        try:
            with running.scope:
                task_status.started()
                while True:
                    try:
                        session = Session(
                            settings=settings,
                            send=self.send,
                            health=kept.health,
                            buffer=kept.buffer,
                            recorder=self.recorder,
                            rng=self.rng,
                            admission=self.admission,
                            keepalive=self.keepalive,
                        )
                    except SessionConfigError as e:
                        # Retrying cannot help; a reload with fixed settings restarts it.
                        log.error("sources.config_error account=%s error=%s", name, e)
                        await self._report(settings, str(e))
                        await trio.sleep_forever()
                    crash_backoff.connected(trio.current_time())
                    try:
                        await session.run()
                    except Exception as e:
                        log.exception("sources.crash account=%s", name)
                        leaf = _leaf(e)
                        kept.health.restart_reason = "session restarted after an internal error"
                        await self._report(
                            settings,
                            f"internal error in the session: {type(leaf).__name__}: {leaf}",
                        )
                    else:
                        return  # the shared channel's consumer is gone
                    crash_backoff.disconnected(trio.current_time())
                    await trio.sleep(crash_backoff.next_delay())
        finally:
            running.done.set()
            if self._running.get(name) is running:
                del self._running[name]

    async def _report(self, settings: AccountSettings, reason: str) -> None:
        event = stream_fact(
            StreamError,
            exchange=settings.exchange,
            account=settings.name,
            at=now_utc(),
            reason=reason,
        )
        with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
            await self.send.send(event)


def _leaf(error: BaseException) -> BaseException:
    """The one exception inside nested single-member exception groups (trio wraps a task's
    error in one group per nursery it crosses)."""
    while isinstance(error, BaseExceptionGroup) and len(error.exceptions) == 1:
        error = error.exceptions[0]
    return error
