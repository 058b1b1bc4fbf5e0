"""alertd's own downtime: the stream marks (``store.stream_marks``) of each account.

While the daemon runs, ``DowntimeMarks`` writes down every ``interval`` (a second: a SIGKILL
loses at most that much) when each account's streams were last healthy
(``StreamHealth.last_healthy``), with the balances seen then; a graceful stop writes the
moment its sessions stopped, marked as stopped. On the next start it reads them back before
any session starts, and tells each account that was being watched (``alertd_was_down``): its
first connect reports, as a ``stream.gap``, the window from that moment to the reconnect,
why ``alertd stopped`` or ``alertd crashed``. An account with no mark (added while alertd
was down) gets no gap; marks of accounts no longer enabled are forgotten.

One small write a second beside the hot path's (the database runs one call at a time: an
alert's write may wait for it, a fraction of a millisecond), however many accounts: the
process's alive moment, which every connected account's (live) row refers to; an account's
row is written only when what it says changed (connected or not, when, its balances), and
the set of rows pruned only when the set of accounts changed. With 1,000 idle accounts the
old write of every row every second was most of the daemon's idle CPU. Only for the websocket
``Sources`` of a single daemon: replicas cover each other's downtime (``alertd.cluster``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection
from datetime import datetime
from typing import Any, Protocol, TypeVar

import attrs
import trio

from alertd.sources.health import StreamHealth
from alertd.sources.session import now_utc
from alertd.sources.supervisor import Sources
from alertd.store import stream_marks
from alertd.store.stream_marks import StreamMark

log = logging.getLogger(__name__)

T = TypeVar("T")
MARK_INTERVAL = 1.0  # seconds between marks (trio clock)


class Store(Protocol):
    """The state database as this needs it (``store.database.Database``)."""

    async def write(self, fn: Callable[[Any], T]) -> T: ...


@attrs.define
class DowntimeCounts:
    """What the stream marks count as they are kept (``DowntimeStatistics`` freezes them)."""

    restored: int = 0  # accounts told at start that alertd was down
    writes: int = 0  # marks written (the alive moment, and the rows that changed)
    rows: int = 0  # account rows written (only those that changed)
    failures: int = 0  # writes that failed (retried at the next interval)


@attrs.frozen(kw_only=True)
class DowntimeStatistics(DowntimeCounts):
    """The stream marks' counts at one moment."""


@attrs.define(eq=False)
class DowntimeMarks:
    """Keeps ``sources``' stream marks in ``db``; ``graceful()`` says, once stopping, whether
    alertd stops gracefully. Start it (``run``) before ``sources.run``."""

    db: Store
    sources: Sources
    graceful: Callable[[], bool]
    interval: float = MARK_INTERVAL
    _pending: dict[str, StreamMark] = attrs.field(factory=dict)
    # What each account's row says now (as last written): only a change is written again.
    _written: dict[str, StreamMark] = attrs.field(factory=dict)
    _kept: frozenset[str] | None = None  # the accounts the rows were last pruned to
    _started: datetime | None = None
    _counts: DowntimeCounts = attrs.field(factory=DowntimeCounts)
    _failing: bool = False

    def statistics(self) -> DowntimeStatistics:
        return DowntimeStatistics(**attrs.asdict(self._counts, recurse=False))

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        enabled = {a.name for a in self.sources.accounts if a.enabled}
        marks = await self.db.write(lambda conn: _take_over(conn, enabled))
        self._pending = {m.account: m for m in marks}
        self._written = {m.account: attrs.evolve(m, stopped=False) for m in marks}
        self._kept = frozenset(enabled)
        self._started = now_utc()
        self.sources.on_new_account = self._tell
        task_status.started()
        try:
            while True:
                await trio.sleep(self.interval)
                await self._write(stopped=False)
        finally:
            with trio.CancelScope(shield=True):
                await self._write(stopped=self.graceful())

    def _tell(self, health: StreamHealth) -> None:
        mark = self._pending.pop(health.account, None)
        if mark is None or self._started is None:
            return
        self._counts.restored += 1
        how = "stopped" if mark.stopped else "crashed"
        log.info(
            "stream_marks.was_down account=%s since=%s how=%s",
            mark.account,
            mark.healthy.isoformat(),
            how,
        )
        health.alertd_was_down(
            since=mark.healthy, stopped=mark.stopped, balances=mark.balances, wall=self._started
        )

    async def _write(self, *, stopped: bool) -> None:
        wall = now_utc()
        healths = self.sources.healths()
        changed = []
        written = self._written
        for name, health in healths.items():
            # The common case, read without a copy: connected, and its live row says it all.
            mark = written.get(name)
            if not stopped and mark and mark.live and health.connected_with(mark.balances):
                continue
            seen = health.last_healthy(wall)
            if seen is None:
                continue
            at, balances = seen
            # Live while connected (the alive moment stands for "now"), unless stopping: a
            # graceful stop writes every row with its exact moment.
            live = health.connected and not stopped
            mark = StreamMark(
                account=name, healthy=at, stopped=stopped, balances=balances, live=live
            )
            if stopped or not _same(written.get(name), mark):
                changed.append(mark)
        keep = frozenset(healths)
        prune = stopped or keep != self._kept

        def write(conn: stream_marks.Connection) -> None:
            stream_marks.save(conn, changed)
            stream_marks.alive(conn, wall)
            if prune:
                stream_marks.keep_only(conn, keep)
            if stopped:
                stream_marks.mark_stopped(conn, True)

        try:
            await self.db.write(write)
        except Exception as e:  # whatever the database raises (SQLite, PostgreSQL): next time
            if not self._failing or stopped:  # once while it keeps failing
                log.warning("stream_marks.write_failed error=%s (retrying)", e)
            self._counts.failures += 1
            self._failing = True
            return
        self._written.update((m.account, m) for m in changed)
        if prune:
            self._written = {n: m for n, m in self._written.items() if n in keep}
            self._kept = keep
        self._counts.writes += 1
        self._counts.rows += len(changed)
        self._failing = False


def _same(written: StreamMark | None, mark: StreamMark) -> bool:
    """Whether ``written`` already says what ``mark`` does (a live row's moment is the alive
    one, so only its balances count)."""
    if written is None or written.live != mark.live or written.balances != mark.balances:
        return False
    return mark.live or written.healthy == mark.healthy


async def watch(
    db: Store,
    intake: object,
    graceful: Callable[[], bool],
    *,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """``DowntimeMarks(db, intake, graceful).run`` when ``intake`` is the websocket
    ``Sources``; for any other (replay's capture, a replica's) nothing."""
    if isinstance(intake, Sources):
        await DowntimeMarks(db, intake, graceful).run(task_status=task_status)
    else:
        task_status.started()


def _take_over(conn: stream_marks.Connection, enabled: Collection[str]) -> list[StreamMark]:
    """The last run's marks of the accounts still enabled (the others forgotten), and the
    rows marked as this run's: if it ends without a graceful stop, it crashed."""
    stream_marks.create(conn)
    marks = [m for m in stream_marks.load(conn) if m.account in enabled]
    stream_marks.keep_only(conn, enabled)
    stream_marks.settle(conn)
    stream_marks.mark_stopped(conn, False)
    return [attrs.evolve(m, live=False) for m in marks]
