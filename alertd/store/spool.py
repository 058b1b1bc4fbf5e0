"""The spool: where dispatch's writes wait while the shared database (PostgreSQL, ``[daemon]
database``) cannot be reached, so that the streams are read and the rules evaluated on.

A SQLite file in the state directory (``spool.db``, synchronous=FULL: it may be an alert's
only copy), so what it holds survives a crash. A record is one write dispatch would have
made on the outbox (``record_and_enqueue``, ``record_alerts``, ``enqueue``): alerts with
their states, notifications, state changes. ``SpoolingOutbox`` is what dispatch holds on the
shared database: its writes go to the outbox while the database answers, and to the spool
while it is away (``PostgresDatabase.away``) or the spool still holds anything, so that
alerts keep the order they came in.

Draining (``Spool.drain``, run by the store when the database is back, and at start): records
move in the order they came, a batch in one PostgreSQL transaction (``apply``), and leave the
spool only after that transaction committed. A crash in between moves them again, and alert
ids are deterministic and outbox rows keyed (``ON CONFLICT DO NOTHING``), so the second move
changes nothing: nothing is lost, nothing doubled. Nor is an alert the shared database had
already (another replica saw the same frame) queued a second time.

Bounded: at most ``capacity`` alerts. When it is full, one WARNING line says so and dispatch
waits for room (the database back and the spool drained). The oldest are never dropped and no
alert is refused: the streams are read on, and what overflows their queues meanwhile is a
``stream.gap`` the user is told of once alerts move again (DESIGN invariant 1). A write that
carries no new alert (a group's notification for alerts already taken) is always taken.
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import logging
import threading
from collections.abc import Awaitable, Callable, Iterator, Sequence
from functools import partial
from pathlib import Path
from typing import TypeVar

import attrs
import trio

from alertd.store import alert_states
from alertd.store import notifications as outbox_table
from alertd.store.database import connect, transaction
from alertd.store.notifications import OutboxRow
from alertd.store.sql import Connection
from alertd.store.writes import Record

T = TypeVar("T")

log = logging.getLogger(__name__)

SPOOL_FILENAME = "spool.db"
DEFAULT_CAPACITY = 100_000  # alerts (a record is about a kilobyte: ~100 MB on disk at most)
DRAIN_BATCH = 200  # records moved in one PostgreSQL transaction
PUT_POLL = 0.01  # seconds a drain waits for a write counted in but not yet committed

SCHEMA = """
CREATE TABLE IF NOT EXISTS spool (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    record TEXT NOT NULL,
    alerts INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS spool_alerts (id TEXT PRIMARY KEY, seq INTEGER NOT NULL);
"""


class DatabaseUnreachable(Exception):
    """The shared database cannot be reached (``postgres.DatabaseUnavailable`` is one); the
    message names it and says why."""


_WAIT = contextvars.ContextVar("alertd_store_wait", default=True)


@contextlib.contextmanager
def without_waiting() -> Iterator[None]:
    """Store calls made inside fail at once (``DatabaseUnreachable``) while the shared
    database is away, instead of waiting for it to come back: for callers that have
    somewhere else to write (the spool)."""
    token = _WAIT.set(False)
    try:
        yield
    finally:
        _WAIT.reset(token)


def waiting() -> bool:
    """Whether a store call made here waits while the database is away (the default)."""
    return _WAIT.get()


_DONE = "SELECT id FROM dispatch_alerts WHERE id = ANY(?) AND state <> 'held'"


def apply(conn: Connection, *, records: Sequence[Record]) -> list[OutboxRow]:
    """Make ``records`` on the shared database, in order, inside the caller's transaction;
    the outbox rows that were new. A notification whose every alert the database had already
    is not queued (those alerts were handled: by a first move whose answer was lost, or by
    another replica), and such alerts' states are left as they are; nor is a group's
    notification whose every alert the database has as handled (not held: an alert seen
    again while the database was away, whose first copy went out before)."""
    added: list[OutboxRow] = []
    for record in records:
        new = alert_states.insert(conn, list(record.alerts), record.now)
        known = {a.id for (a, _), fresh in zip(record.alerts, new, strict=True) if not fresh}
        if not record.alerts and record.notifications:
            ids = sorted({i for n in record.notifications for i in n.alert_ids})
            known = {r[0] for r in conn.execute(_DONE, (ids,))}
        notes = [n for n in record.notifications if not (n.alert_ids and set(n.alert_ids) <= known)]
        added += outbox_table.insert(conn, notes)
        alert_states.set_states(conn, [(i, s) for i, s in record.states if i not in known])
    return added


@attrs.define
class SpoolCounts:
    """What the spool counts as it works (the first fields of its statistics)."""

    alerts: int = 0  # alerts in the spool now, waiting for the database
    records: int = 0  # writes in the spool now
    spooled: int = 0  # alerts taken in since start
    drained: int = 0  # alerts moved to the shared database since start (at start included)
    full: bool = False  # dispatch waits for room now
    fills: int = 0  # times it filled up since start


@attrs.frozen(kw_only=True)
class SpoolStatistics(SpoolCounts):
    capacity: int  # alerts it holds at most


@attrs.frozen(kw_only=True)
class OutageStatistics:
    """The shared database's reachability, and the spool (``PostgresDatabase.outage``)."""

    away_since: float | None  # Unix seconds it went away; None while it answers
    unanswered_since: float | None = None  # a call trying it again since then (not away yet)
    spool: SpoolStatistics


def outage_of(db: object) -> OutageStatistics | None:
    """``db``'s outage statistics, if it is a shared database with a spool, else None."""
    outage = getattr(db, "outage", None)
    found = outage() if callable(outage) else None
    return found if isinstance(found, OutageStatistics) else None


class Spool:
    """The spool file at ``path`` (created if missing; what an earlier process left in it is
    kept for ``drain``). Its calls run in a worker thread of its own, one at a time."""

    def __init__(self, path: Path, *, capacity: int = DEFAULT_CAPACITY) -> None:
        self.path = path
        self.capacity = capacity
        self._conn = connect(path)
        self._conn.execute("PRAGMA synchronous=FULL")
        self._conn.executescript(SCHEMA)
        self._lock = threading.Lock()
        self._limiter = trio.CapacityLimiter(1)
        records, alerts = self._conn.execute(
            "SELECT COUNT(*), COALESCE(SUM(alerts), 0) FROM spool"
        ).fetchone()
        self._counts = SpoolCounts(alerts=int(alerts), records=int(records))
        self._reserved = 0  # writes counted in, on their way to the file
        self._room = trio.Event()

    @property
    def pending(self) -> bool:
        """Whether the spool holds anything (or a write to it is on its way)."""
        return self._counts.records + self._reserved > 0

    def statistics(self) -> SpoolStatistics:
        return SpoolStatistics(**attrs.asdict(self._counts, recurse=False), capacity=self.capacity)

    def room_for(self, alerts: int) -> bool:
        """Whether ``alerts`` new alerts may go in now (always, into an empty spool)."""
        return (
            alerts == 0 or self._counts.alerts == 0 or self._counts.alerts + alerts <= self.capacity
        )

    async def wait_for_room(self) -> None:
        """Wait until records leave the spool; the first wait of a fill says so, once."""
        if not self._counts.full:
            self._counts.full = True
            self._counts.fills += 1
            log.warning(
                "store.spool_full alerts=%d capacity=%d path=%s: dispatch waits for the "
                "database ([daemon] spool_max); nothing is dropped, the streams are read on, "
                "and what overflows their queues meanwhile is reported as a gap",
                self._counts.alerts,
                self.capacity,
                self.path,
            )
        await self._room.wait()

    async def put(self, record: Record, *, whole: bool) -> list[bool] | None:
        """Add ``record``; per alert, whether it was new to the spool (one already in it is
        left out). With ``whole``, a record with any such alert is not written (None)."""
        self._reserved += 1
        try:
            fresh, kept = await self._thread(self._put, record, whole)
        finally:
            self._reserved -= 1
        if kept is not None:
            self._counts.records += 1
            self._counts.alerts += kept
            self._counts.spooled += kept
        return fresh

    async def drain(
        self,
        write: Callable[[Callable[[Connection], list[OutboxRow]]], Awaitable[list[OutboxRow]]],
        hand_over: Callable[[Sequence[OutboxRow]], None],
    ) -> int:
        """Move everything to the shared database (``write``: one transaction there), in
        order, until the spool is empty, writes made meanwhile included; each batch's new
        outbox rows go to ``hand_over`` once committed. Returns how many alerts moved; raises
        ``DatabaseUnreachable`` when the database goes away again (the rest stays)."""
        moved = 0
        while self.pending:
            batch = await self._thread(self._head, DRAIN_BATCH)
            if not batch:
                await trio.sleep(PUT_POLL)  # a put counted in, not yet committed
                continue
            records = [r for _, r in batch]
            with without_waiting():
                added = await write(partial(apply, records=records))
            moved += await self._thread(self._delete, [seq for seq, _ in batch])
            self._left(batch)
            hand_over(added)
        return moved

    def drain_sync(self, write: Callable[[Callable[[Connection], list[OutboxRow]]], object]) -> int:
        """``drain`` outside trio, at start (before any stage runs); no rows handed over
        (delivery reads the table when it starts)."""
        moved = 0
        while batch := self._head(DRAIN_BATCH):
            records = [r for _, r in batch]
            write(partial(apply, records=records))
            moved += self._delete([seq for seq, _ in batch])
            self._counts.records -= len(batch)
            self._counts.alerts -= sum(len(r.alerts) for r in records)
        self._counts.drained += moved
        return moved

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    # -- in the spool's thread ----------------------------------------------------------------

    async def _thread(self, fn: Callable[..., T], *args: object) -> T:
        return await trio.to_thread.run_sync(fn, *args, limiter=self._limiter)

    def _put(self, record: Record, whole: bool) -> tuple[list[bool] | None, int | None]:
        with self._lock, transaction(self._conn):
            ids = [a.id for a, _ in record.alerts]
            seen = {
                r[0]
                for r in self._conn.execute(
                    "SELECT id FROM spool_alerts WHERE id IN (SELECT value FROM json_each(?))",
                    (json.dumps(ids),),
                )
            }
            fresh = []
            for i in ids:  # the same alert twice in one write: the second is a duplicate
                fresh.append(i not in seen)
                seen.add(i)
            if whole and not all(fresh):
                return None, None
            alerts = tuple(x for x, new in zip(record.alerts, fresh, strict=True) if new)
            kept = attrs.evolve(record, alerts=alerts)
            if not (kept.alerts or kept.notifications or kept.states):
                return fresh, None
            cur = self._conn.execute(
                "INSERT INTO spool (record, alerts) VALUES (?, ?)", (kept.to_json(), len(alerts))
            )
            self._conn.executemany(
                "INSERT INTO spool_alerts (id, seq) VALUES (?, ?)",
                [(a.id, cur.lastrowid) for a, _ in alerts],
            )
            return fresh, len(alerts)

    def _head(self, limit: int) -> list[tuple[int, Record]]:
        with self._lock:
            rows = self._conn.execute(
                "SELECT seq, record FROM spool ORDER BY seq LIMIT ?", (limit,)
            ).fetchall()
        return [(int(seq), Record.from_json(text)) for seq, text in rows]

    def _delete(self, seqs: Sequence[int]) -> int:
        """Forget the records ``seqs`` (moved); how many alerts they held."""
        args = (json.dumps(list(seqs)),)
        with self._lock, transaction(self._conn):
            (alerts,) = self._conn.execute(
                "SELECT COALESCE(SUM(alerts), 0) FROM spool "
                "WHERE seq IN (SELECT value FROM json_each(?))",
                args,
            ).fetchone()
            self._conn.execute(
                "DELETE FROM spool WHERE seq IN (SELECT value FROM json_each(?))", args
            )
            self._conn.execute(
                "DELETE FROM spool_alerts WHERE seq IN (SELECT value FROM json_each(?))", args
            )
        return int(alerts)

    def _left(self, batch: Sequence[tuple[int, Record]]) -> None:
        """``batch`` left the spool: count it and wake dispatch if it waits for room."""
        alerts = sum(len(r.alerts) for _, r in batch)
        self._counts.records -= len(batch)
        self._counts.alerts -= alerts
        self._counts.drained += alerts
        if self._counts.full and self.room_for(1):
            self._counts.full = False
        self._room.set()
        self._room = trio.Event()
