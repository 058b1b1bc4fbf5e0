"""The store on PostgreSQL, shared by replicas (``[daemon] database``): the same interface as
SQLite's ``database.Database`` (``run``/``write`` in a worker thread, one call at a time,
each write one transaction), over a ``psycopg_pool`` pool of psycopg 3 connections in
autocommit mode. psycopg's async API is asyncio-only, so, like SQLite, it is called
synchronously from trio worker threads.

The table modules' SQL uses ``?`` placeholders; ``PgConnection`` rewrites them to psycopg's
``%s`` and carries this process's ``Claims`` (replica name, claimant, lease), by which the
table modules know they are on the shared database (``sql.claims``).

Opening one migrates the schema (``schema.migrate``). While the daemon runs, ``upkeep``
renews this process's claims on outbox rows (every third of the lease); ``close`` releases
them, so after a graceful stop another replica takes what was left at once.

When the database cannot be reached, a call is tried again for ``retry_for`` seconds
(``[daemon] database_retry``); once those are spent the database is *away* until ``upkeep``
reaches it again: dispatch's writes go to the spool meanwhile, other calls wait for it
(store/outage.py says how, and why).

psycopg's errors are translated into ``DatabaseUnavailable`` (store/pg_connect.py, with the
connections themselves, one for tools and ``alertd check``'s look at the database).
"""

from __future__ import annotations

import logging
import secrets
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import psycopg
import psycopg.conninfo
import trio
from psycopg_pool import ConnectionPool, PoolTimeout

from alertd.store import claims
from alertd.store.database import Failing
from alertd.store.notifications import OutboxRow
from alertd.store.outage import Outage
from alertd.store.pg_connect import (
    CONNECT_TIMEOUT,
    DEFAULT_LEASE,
    DatabaseUnavailable,
    PgConnection,
    cause,
    check,
    connect,
    where,
)
from alertd.store.spool import DatabaseUnreachable, OutageStatistics, Spool
from alertd.store.sql import Claims, Connection

__all__ = [
    "Claims",
    "DatabaseUnavailable",
    "PgConnection",
    "PostgresDatabase",
    "check",
    "connect",
    "where",
]

T = TypeVar("T")

log = logging.getLogger(__name__)

POOL_SIZE = 4  # connections: the store's calls (one at a time) and a few of other users'
# A call the database does not answer is tried again (waits 0.1 s, doubling up to 2 s) for
# RETRY_FOR seconds ([daemon] database_retry); then the database is away (module docstring).
RETRY_FOR = 10.0
RETRY_FIRST = 0.1
RETRY_MAX = 2.0
PROBE_INTERVAL = 1.0  # seconds between attempts to reach a database that is away
PROBE_TIMEOUT = 2.0  # seconds for one such attempt


class PostgresDatabase:
    """A pool of connections used from worker threads, one store call at a time; the schema
    is migrated on construction (a synchronous call, made once at start-up)."""

    def __init__(
        self,
        url: str,
        *,
        replica: str,
        lease: float = DEFAULT_LEASE,
        timeout: float = CONNECT_TIMEOUT,
        pool_size: int = POOL_SIZE,
        retry_for: float = RETRY_FOR,
        spool: Spool | None = None,
    ) -> None:
        self.url = url
        self.where = where(url)
        self.claims = Claims(
            replica=replica, claimant=f"{replica}/{secrets.token_hex(4)}", lease=lease
        )
        first = connect(url, replica=replica, timeout=timeout)
        first.raw.close()
        self._timeout, self._pool_size = timeout, pool_size
        self.pool = self._open_pool(timeout)
        self.retry_for = retry_for
        self.spool = spool  # where dispatch's writes wait while the database is away
        self._failing = Failing()  # said once: store.database_unavailable
        self._lock = threading.Lock()
        self._limiter = trio.CapacityLimiter(1)
        self.renewals = 0  # lease renewals done (``upkeep``)
        self.outage_state = Outage(self.where, spool)
        self._drained: Callable[[Sequence[OutboxRow]], None] = lambda rows: None

    def _open_pool(self, timeout: float) -> ConnectionPool[Any]:
        pool: ConnectionPool[Any] = ConnectionPool(
            self.url,
            min_size=1,
            max_size=self._pool_size,
            kwargs={"autocommit": True, "connect_timeout": max(1, round(self._timeout))},
            # No check before each use (a round trip per call): a connection a server restart
            # broke fails its call, the pool drops it, and the call is tried again (_call).
            timeout=self._timeout,
            name="alertd",
            open=False,
        )
        try:
            pool.open(wait=True, timeout=timeout)
        except PoolTimeout as e:
            pool.close()
            raise DatabaseUnavailable(f"cannot reach the database {self.where}: {e}") from e
        return pool

    # -- the database away (store/outage.py) -------------------------------------------------

    @property
    def away(self) -> bool:
        """Whether the database is away (module docstring): calls then do not reach it."""
        return self.outage_state.is_away()

    def outage(self) -> OutageStatistics | None:
        """Since when the database is away, and the spool; None without a spool."""
        return self.outage_state.statistics()

    def hand_drained_to(self, put: Callable[[Sequence[OutboxRow]], None]) -> None:
        """Give the outbox rows a drain of the spool queued to ``put`` (delivery's hand-off)."""
        self._drained = put

    def stop_waiting(self) -> None:
        """The daemon stops: calls no longer wait for a database that is away, they fail."""
        self.outage_state.stop_waiting()

    def _close_pool(self) -> None:
        with self._lock:
            self.pool.close(timeout=1.0)

    def _probe(self) -> bool:
        """Whether the database answers again (in a worker thread); if it does, with a new
        pool (the old one's connections died with the server, and it may be backing off)."""
        try:
            psycopg.connect(self.url, autocommit=True, connect_timeout=round(PROBE_TIMEOUT)).close()
            pool = self._open_pool(PROBE_TIMEOUT)
        except (psycopg.Error, DatabaseUnavailable):
            return False
        with self._lock:
            old, self.pool = self.pool, pool
            self.outage_state.away_since = self.outage_state.unanswered_since = None
        old.close(timeout=1.0)
        return True

    async def _recover(self) -> None:
        """While the database is away, try to reach it every PROBE_INTERVAL; once it answers,
        let the waiting calls go on and drain the spool (again, if it goes away meanwhile)."""
        while True:
            since = await self.outage_state.gone()
            # Closed: it would try to reconnect in the background meanwhile, with a log line
            # each time; calls do not use it while the database is away, and _probe opens a
            # new one.
            await trio.to_thread.run_sync(self._close_pool)
            while not await trio.to_thread.run_sync(self._probe):  # noqa: ASYNC110 (polls)
                await trio.sleep(PROBE_INTERVAL)
            self.outage_state.back(since)
            spool = self.spool
            if spool is None:
                continue
            try:
                moved = await spool.drain(self.write, self._drained)
            except DatabaseUnreachable:
                continue  # away again: went_away said so, the probe looks again
            log.info("store.spool_drained alerts=%d", moved)

    # -- calls --------------------------------------------------------------------------------

    def _call(self, fn: Callable[[Connection], T], *, transaction: bool) -> T:
        """``fn`` on a connection of the pool; tried again while the database does not
        answer (a restart, a failover), for up to ``retry_for`` seconds, after which it is
        away; while it is away, at once ``DatabaseUnavailable``. A write tried again may have
        committed the first time (the answer was lost): the table modules' writes are safe
        to repeat (``ON CONFLICT DO NOTHING``, marks of pending rows only)."""
        if self.outage_state.is_away():
            raise DatabaseUnavailable(self.outage_state.message())
        deadline = time.monotonic() + self.retry_for
        delay = RETRY_FIRST
        while True:
            try:
                wait = max(RETRY_FIRST, deadline - time.monotonic())
                with self.pool.connection(timeout=min(wait, self._timeout)) as raw:
                    conn = PgConnection(raw, self.claims)
                    if not transaction:
                        result = fn(conn)
                    else:
                        with raw.transaction():
                            result = fn(conn)
            except (psycopg.OperationalError, PoolTimeout) as e:
                why = f"the database {self.where}: {cause(e, self.url)}"
                if time.monotonic() + delay > deadline:
                    outage = self.outage_state  # away since it first did not answer
                    outage.away_since = outage.unanswered_since or time.time()
                    self._failing.failing = False  # an outage now: its lines are outage.py's
                    raise DatabaseUnavailable(why) from e
                self.outage_state.unanswered_since = self.outage_state.unanswered_since or (
                    time.time()
                )
                self._failing.failed(log, "store.database_unavailable", why)
                time.sleep(delay)
                delay = min(delay * 2, RETRY_MAX)
                continue
            self.outage_state.unanswered_since = None
            self._failing.ok(log, f"store.database_back database={self.where}")
            return result

    def run_sync(self, fn: Callable[[Connection], T]) -> T:
        """``fn(conn)`` now, in this thread, each statement committed as it runs."""
        with self._lock:
            return self._call(fn, transaction=False)

    def write_sync(self, fn: Callable[[Connection], T]) -> T:
        """``fn(conn)`` in one transaction, in this thread."""
        with self._lock:
            return self._call(fn, transaction=True)

    async def _async(
        self, call: Callable[[Callable[[Connection], T]], T], fn: Callable[[Connection], T]
    ) -> T:
        """``call(fn)`` in a worker thread; while the database is away, first waits for it
        (module docstring), or fails at once under ``spool.without_waiting``."""
        outage = self.outage_state
        while True:
            if outage.is_away():
                if outage.fails_now():
                    raise DatabaseUnavailable(outage.message())
                await outage.wait()
                continue
            try:
                return await trio.to_thread.run_sync(call, fn, limiter=self._limiter)
            except DatabaseUnavailable as e:
                if not outage.is_away():
                    raise  # not an outage: tried for retry_for while others answered
                outage.went_away(e)
                if outage.fails_now():
                    raise

    async def run(self, fn: Callable[[Connection], T]) -> T:
        """``fn(conn)`` in a worker thread; not abandoned on cancel (as SQLite's)."""
        return await self._async(self.run_sync, fn)

    async def write(self, fn: Callable[[Connection], T]) -> T:
        """``fn(conn)`` in one transaction in a worker thread; rolled back if it raises."""
        return await self._async(self.write_sync, fn)

    async def upkeep(
        self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Renew this process's claims on outbox rows every third of the lease, until
        cancelled, and bring the database back when it is away (``_recover``). A failed
        renewal is said once (and when they work again): rows whose lease runs out meanwhile
        may be taken by another replica."""
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._recover)
            await self._renew(task_status)

    async def _renew(self, task_status: trio.TaskStatus[None]) -> None:
        failing = Failing()
        task_status.started()
        while True:
            await trio.sleep(self.claims.lease / 3)
            try:
                await self.write(claims.renew_claims)
            except DatabaseUnavailable as e:
                failing.failed(log, "store.lease_renewal_failed", e)
            else:
                failing.ok(log, "store.lease_renewal_recovered")
                self.renewals += 1

    def close(self) -> None:
        """Release this process's claims (another replica takes them at once), then close."""
        self.retry_for = min(self.retry_for, RETRY_MAX)  # a stop does not wait out an outage
        try:
            self.write_sync(claims.release_claims)
        except DatabaseUnavailable as e:
            log.warning("store.release_failed %s (other replicas wait for the lease)", e)
        self.pool.close()
        if self.spool is not None:
            self.spool.close()
