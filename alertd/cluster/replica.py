"""``ClusterSources``: the intake of a replica on a shared database. It watches the accounts
the cluster gives it and tells the cluster what it sees of them.

Every round (``takeover_after / 5``, and soon after a connection of its own comes or goes) a
replica renews its lease (``takeover_after * 3/5``), reads the live replicas and follows the
assignment (``view.assignment``: rendezvous hashing, ``[daemon] watchers`` replicas an
account) by handing the accounts it watches to its ``Sources``, the very path a reload takes
(``Sources.update``: unchanged accounts stay connected, others start or stop). A replica that
dies stops renewing; within ``takeover_after`` its lease has run out and the others' next
round has given its accounts to the live ones. A replica that stops gracefully hands its
accounts over at once.

A replica that cannot reach the database goes on with the assignment it last had (from the
start: every account, as if it were alone), and retries every round. Once the database has
been out of reach for ``takeover_after`` the cluster cannot see the streams, so the replica
reports its own stream facts as a single daemon does (``degraded``): every replica may then
say the same outage, but no account goes dark unannounced.

Stream health belongs to the cluster: the sessions' own ``stream.connected``,
``stream.disconnected`` and offline ``stream.gap`` facts do not reach the engine; they become
this replica's watch row (connected or not, since when, when it last had the stream healthy,
why it lost it). An account's reporter (its first watcher) decides the cluster's view from
every watcher's row and hands on the cluster's own stream facts, made from the database's
row (``view``), so that one window is one set of alerts whoever reports it. Everything else
(orders, balances, stale streams, errors) goes on to the engine as it comes.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import UTC, datetime
from functools import partial
from typing import Any, TypeVar

import attrs
import trio

from alertd.cluster import view
from alertd.config.model import AccountSettings
from alertd.engine.assignments import Assignment, Assignments
from alertd.events import Event, StreamConnected, StreamDisconnected, StreamGap
from alertd.sources.admission import Admission
from alertd.sources.capture import Recorder
from alertd.sources.streams import CONNECTION
from alertd.sources.supervisor import Sources, SourcesStatistics
from alertd.store.cluster import Ack, ClusterStore, ClusterStoreError, StreamRow, Watch

log = logging.getLogger(__name__)

T = TypeVar("T")

ROUNDS_PER_TAKEOVER = 5  # rounds within takeover_after
LEASE_SHARE = 0.6  # of takeover_after: lease plus one round is within it, with a round to spare
# Rounds with no watcher on an account before it is blind: a graceful handover is shorter.
HANDOVER_ROUNDS = 2
MIN_ROUND_GAP = 0.2  # seconds: rounds that a burst of connection changes calls for, at most
FILTER_QUEUE = 1024  # events between the sessions and the filter
LEAVE_TIMEOUT = 5.0  # seconds a graceful stop waits to hand its accounts over
OWN_WINDOWS = frozenset({"offline", "alertd stopped", "alertd crashed"})  # a gap's why
STOPPED_WATCHING = "replica stopped watching the account"


@attrs.frozen(kw_only=True)
class ClusterStatistics(SourcesStatistics):
    """A replica at one moment: the accounts it watches (``accounts``: their statistics, as
    ``Sources`` gives them), and what it knows of the cluster."""

    replica: str
    live: tuple[str, ...]  # the live replicas, as last read
    watching: tuple[str, ...]  # the accounts this replica watches
    reporting: tuple[str, ...]  # those it reports the cluster's view of
    blind: tuple[str, ...]  # of those, the ones no watcher has the stream of
    rounds: int  # rounds the database answered
    database_errors: int  # rounds it did not
    database_ok: bool  # whether the last round reached it
    degraded: bool  # out of reach so long that this replica reports its own stream facts


@attrs.define
class _Local:
    """This replica's own connection to one account, from its session's facts."""

    connected: bool = False
    since: datetime | None = None
    lost_at: datetime | None = None
    reason: str | None = None


def _now() -> datetime:
    return datetime.now(UTC)


@attrs.define(eq=False)
class ClusterSources:
    """The intake of replica ``replica`` on ``store`` (see the module docstring)."""

    accounts: Sequence[AccountSettings]
    send: trio.MemorySendChannel[Event]
    store: ClusterStore
    replica: str
    watchers: int = 2
    takeover_after: float = 15.0
    recorder: Recorder | None = None
    admission: Admission | None = None  # the process's limit on new connections
    _sources: Sources | None = None
    _live: tuple[str, ...] = ()
    _plan: dict[str, list[str]] = attrs.field(factory=dict)
    _watching: frozenset[str] = frozenset()
    # accounts no longer watched, not yet written so: when this replica last had each healthy
    _dropped: dict[str, datetime | None] = attrs.field(factory=dict)
    _local: dict[str, _Local] = attrs.field(factory=dict)
    _streams: dict[str, StreamRow] = attrs.field(factory=dict)
    _acks: list[Ack] = attrs.field(factory=list)
    _handed: set[Ack] = attrs.field(factory=set)
    _rounds: int = 0
    _errors: int = 0
    _ok: bool = False
    _unreachable_since: float | None = None  # trio time of the first failure of a streak
    _joined: bool = False
    _changed: trio.Event = attrs.field(factory=trio.Event)
    _lock: trio.Lock = attrs.field(factory=trio.Lock)
    # What the engine is told it owns: the accounts this replica reports (engine/assignments)
    assignments: Assignments = attrs.field(factory=Assignments)
    _continuing: bool | None = None  # whether other replicas were live at the first round

    @property
    def watching(self) -> frozenset[str]:
        """The accounts this replica watches now."""
        return self._watching

    @property
    def round_interval(self) -> float:
        return self.takeover_after / ROUNDS_PER_TAKEOVER

    def statistics(self) -> ClusterStatistics:
        accounts = self._sources.statistics().accounts if self._sources else {}
        reporting = self._reporting()
        return ClusterStatistics(
            accounts=accounts,
            replica=self.replica,
            live=self._live,
            watching=tuple(sorted(self._watching)),
            reporting=tuple(sorted(reporting)),
            blind=tuple(view.blind_accounts({a: self._streams[a] for a in reporting
                                             if a in self._streams})),
            rounds=self._rounds,
            database_errors=self._errors,
            database_ok=self._ok,
            degraded=self.degraded,
        )  # fmt: skip

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Join the cluster, watch what it assigns until cancelled, then leave it."""
        inner_send, inner_recv = trio.open_memory_channel[Event](FILTER_QUEUE)
        self._sources = Sources([], inner_send, recorder=self.recorder, admission=self.admission)
        try:
            async with trio.open_nursery() as nursery:
                await nursery.start(self._sources.run)
                nursery.start_soon(self._filter, inner_recv)
                live = await self._join()
                await self._follow(live if live is not None else [self.replica])
                await self._round()
                task_status.started()
                await self._rounds_forever()
        finally:
            with trio.CancelScope(shield=True):
                await self._leave()

    async def update(self, accounts: Sequence[AccountSettings]) -> None:
        """A reloaded config: the accounts the cluster assigns of ``accounts``."""
        self.accounts = list(accounts)
        await self._follow(self._live)

    # -- rounds -----------------------------------------------------------------------------

    @property
    def _lease(self) -> float:
        return self.takeover_after * LEASE_SHARE

    async def _rounds_forever(self) -> None:
        while True:
            self._changed = trio.Event()
            with trio.move_on_after(self.round_interval):
                await self._changed.wait()
                await trio.sleep(MIN_ROUND_GAP)  # let the other changes of a burst arrive
            live = await self._join()
            if live is not None:
                await self._follow(live)
            await self._round()

    async def _join(self) -> list[str] | None:
        """Renew the lease (joining first, the tables ready, until that worked): the live
        replicas, or None while the database cannot be reached."""
        if not self._joined:
            if await self._db(self.store.open) is None and not self.store.is_open:
                return None
            live: list[str] | None = await self._db(self.store.join, self.replica, self._lease)
            self._joined = live is not None
            return live
        renewed: list[str] | None = await self._db(self.store.renew, self.replica, self._lease)
        return renewed

    async def _db(self, fn: Any, *args: Any) -> Any:
        """``fn(*args)`` in a worker thread; None (counted, logged once a streak) when the
        database cannot answer: the replica goes on with what it last knew."""
        try:
            result = await trio.to_thread.run_sync(partial(fn, *args))
        except ClusterStoreError as e:
            self._errors += 1
            if self._ok or self._errors == 1:
                log.warning("cluster.database_error replica=%s error=%s", self.replica, e)
                self._unreachable_since = trio.current_time()
            self._ok = False
            return None
        if not self._ok:
            if self._rounds:
                log.info("cluster.database_ok replica=%s", self.replica)
            self._ok, self._unreachable_since = True, None
        return result

    @property
    def degraded(self) -> bool:
        """Whether the database has been out of reach for ``takeover_after``: the cluster
        cannot see the streams then, so this replica says what it sees of its own (fail
        open: every replica may say it, but the account does not go dark unannounced)."""
        since = self._unreachable_since
        return since is not None and trio.current_time() - since >= self.takeover_after

    async def _follow(self, live: Sequence[str]) -> None:
        """Watch what the cluster of ``live`` replicas assigns this one."""
        async with self._lock:
            names = [a.name for a in self.accounts if a.enabled]
            self._live = tuple(live)
            self._plan = view.assignment(names, live, self.watchers)
            watching = frozenset(a for a, ws in self._plan.items() if self.replica in ws)
            if self._continuing is None:
                self._continuing = any(r != self.replica for r in live)
            self.assignments.assign(
                Assignment(
                    owned=frozenset(self._reporting()), watched=watching,
                    continuing=self._continuing,
                )
            )  # fmt: skip
            if watching == self._watching and self._sources is not None:
                await self._sources.update([a for a in self.accounts if a.name in watching])
                return
            for name in self._watching - watching:
                local = self._local.pop(name, None)
                self._dropped[name] = _now() if local is not None and local.connected else None
            for name in watching:
                self._dropped.pop(name, None)
            self._watching = watching
            log.info(
                "cluster.assignment replica=%s live=%s watching=%d accounts=%s",
                self.replica, ",".join(live), len(watching), ",".join(sorted(watching)) or "-",
            )  # fmt: skip
            if self._sources is not None:
                await self._sources.update([a for a in self.accounts if a.name in watching])

    def _reporting(self) -> list[str]:
        return [a for a, ws in self._plan.items() if ws and ws[0] == self.replica]

    async def _round(self) -> None:
        """Tell the cluster what this replica sees, and report the accounts it reports."""
        now = _now()
        watches = [self._watch(name, now) for name in sorted(self._watching)]
        dropped = dict(self._dropped)
        watches += [
            Watch(account=name, connected=False, healthy_at=at, reason=STOPPED_WATCHING)
            for name, at in sorted(dropped.items())
        ]
        acks, report = list(self._acks), self._reporting()
        decide = partial(self._decide, frozenset(self._live))
        rows = await self._db(self.store.exchange, self.replica, watches, acks, report, decide)
        if rows is None:
            return
        self._rounds += 1
        for name, at in dropped.items():  # written; one dropped again meanwhile waits its turn
            if name in self._dropped and self._dropped[name] == at:
                del self._dropped[name]
        del self._acks[: len(acks)]
        self._handed -= set(acks)  # acknowledged: the rows say so from now on
        exchanges = {a.name: a.exchange for a in self.accounts}
        for decided in rows:
            row = decided.row
            if decided.changed and row.state != "new":
                self._log_change(row)
            self._streams[row.account] = row
            # What another reporter decided is its to hand on, unless it has not said it did
            # for a while (it died): then this one does, with the same alert ids.
            if decided.changed or decided.age >= HANDOVER_ROUNDS * self.round_interval:
                await self._report(row, exchanges.get(row.account, ""))

    def _decide(self, live: frozenset[str], account: str, row: StreamRow | None,
                watches: Sequence[Any], now: datetime) -> StreamRow:  # fmt: skip
        return view.decide(
            account, row, watches, live, now,
            grace=self._grace(), handover=HANDOVER_ROUNDS * self.round_interval,
        )  # fmt: skip

    def _grace(self) -> float:
        """How long a new cluster may take to see an account first: ``takeover_after``, plus
        what the connection limit makes every account wait to connect (accounts queued
        behind the burst are not blind, only not yet admitted)."""
        gate, count = self.admission, sum(1 for a in self.accounts if a.enabled)
        queued = 0.0 if gate is None else max(0, count - gate.burst) / gate.rate
        return self.takeover_after + queued

    def _watch(self, name: str, now: datetime) -> Watch:
        local = self._local.get(name) or _Local()
        return Watch(
            account=name,
            connected=local.connected,
            connected_since=local.since if local.connected else None,
            healthy_at=now if local.connected else local.lost_at,
            reason=local.reason,
        )

    async def _report(self, row: StreamRow, exchange: str) -> None:
        down, back = view.pending_events(row, exchange)
        for events, is_back in ((down, False), (back, True)):
            if not events:
                continue
            assert row.blind_since is not None
            ack = Ack(account=row.account, blind_since=row.blind_since, back=is_back)
            if ack not in self._handed:  # handed on, not acknowledged yet: the same again
                for event in events:
                    await self.send.send(event)
                self._handed.add(ack)
            self._acks.append(ack)
            self._changed.set()  # acknowledge soon, so a takeover does not repeat them

    def _log_change(self, row: StreamRow) -> None:
        if row.state == "blind":
            log.warning(
                "cluster.blind account=%s since=%s reason=%s",
                row.account, row.blind_since.isoformat() if row.blind_since else "-", row.reason,
            )  # fmt: skip
        elif row.state == "seen" and row.back_at is not None and row.blind_since is not None:
            log.warning(
                "cluster.back account=%s since=%s until=%s",
                row.account, row.blind_since.isoformat(), row.back_at.isoformat(),
            )  # fmt: skip
        elif row.state == "seen":  # the cluster's first sight of the account
            log.info("cluster.seen account=%s", row.account)

    async def _leave(self) -> None:
        if not self._joined:
            await trio.to_thread.run_sync(self.store.close)
            return
        with trio.move_on_after(LEAVE_TIMEOUT):
            try:
                await trio.to_thread.run_sync(partial(self.store.leave, self.replica, at=_now()))
                log.info("cluster.left replica=%s", self.replica)
            except ClusterStoreError as e:
                log.warning("cluster.leave_failed replica=%s error=%s", self.replica, e)
        await trio.to_thread.run_sync(self.store.close)

    # -- the sessions' facts ------------------------------------------------------------------

    async def _filter(self, recv: trio.MemoryReceiveChannel[Event]) -> None:
        """Everything the sessions send goes on, except their connection facts (see above)."""
        send = self.send
        async with recv:
            async for event in recv:
                if _local_fact(event):
                    self._note(event)
                    if not self.degraded:
                        continue
                await send.send(event)

    def _note(self, event: Event) -> None:
        if event.account not in self._watching:
            return
        local = self._local.setdefault(event.account, _Local())
        if isinstance(event, StreamConnected):
            local.connected, local.since = True, event.time
        elif isinstance(event, StreamDisconnected):
            if local.connected:
                local.lost_at = event.time
            local.connected, local.reason = False, event.reason
        else:
            return
        self._changed.set()


def _local_fact(event: Event) -> bool:
    """A connection fact of this replica's own session (decided by the cluster instead)."""
    if isinstance(event, StreamConnected | StreamDisconnected):
        return event.stream == CONNECTION
    # stream.gap and what a snapshot after it shows (stream.gap.evidence) of a window in which
    # this replica, not the cluster, was blind (a gap of overflow or sequence goes on)
    return event.kind.startswith(StreamGap.kind) and getattr(event, "why", None) in OWN_WINDOWS
