"""The SQLite state database in the state directory: one file, WAL, shared by the outbox,
rule state and silences (each module creates its own tables).

SQLite calls block, so async code goes through ``Database``, which runs them in a worker
thread, one at a time (invariant 6): ``run`` for queries, ``write`` for every change. A
write is one transaction (``transaction``: ``BEGIN IMMEDIATE`` ... ``COMMIT``, or
``ROLLBACK`` when the function raises); the table modules (``notifications``,
``alert_states``, ``rule_state``) are plain functions over a connection, so a caller can
combine several tables' changes into one write. Command-line tools may use ``connect`` and
``transaction`` directly.

Checkpoints: by default SQLite copies the WAL back into the database inside whichever commit
crosses 1,000 pages, and that checkpoint fsyncs, so every few seconds one alert's outbox write
waited for the disk (5-7 ms here, the whole p99 of the latency benchmark). While the daemon
runs ``Database.checkpoints``, a second connection checkpoints in its own worker thread once a
second (PASSIVE: it waits for no reader or writer, and writers go on appending while it
copies). SQLite has no background checkpointer of its own; this is the arrangement its WAL
documentation suggests for applications that cannot take the pause.

The WAL starts over only when a write begins after a checkpoint that copied every frame, and
a checkpoint running beside the writer rarely does under steady writes (hundreds a second):
the log would grow without end. So the writing connection keeps a checkpoint of its own, at
BACKSTOP_PAGES instead of 1,000. It completes (no write of this process runs beside it), the
background rounds have copied most of the log already, and it comes four times less often.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

import attrs
import trio

from alertd.store.sql import Connection

T = TypeVar("T")

log = logging.getLogger(__name__)

DB_FILENAME = "alertd.db"
BUSY_TIMEOUT_MS = 5000  # another process (alertd silence add) may hold the write lock briefly
CHECKPOINT_INTERVAL = 1.0  # seconds (trio clock) between background checkpoints
AUTOCHECKPOINT_PAGES = 1000  # SQLite's default, restored when the background checkpoints stop
BACKSTOP_PAGES = 4096  # the writer's own checkpoint meanwhile: the WAL stays under ~16 MiB
# The WAL is cut back to this size when it restarts, so a burst does not leave a large file.
WAL_SIZE_LIMIT = 4 * 1024 * 1024


@attrs.define
class Failing:
    """A failure a loop retries, told once when it starts and once when it ends, not every
    round (checkpoints, lease renewals, calls the database is away for)."""

    failing: bool = False

    def failed(self, logger: logging.Logger, event: str, error: object) -> None:
        if not self.failing:
            logger.warning("%s %s (retrying)", event, error)
        self.failing = True

    def ok(self, logger: logging.Logger, event: str) -> None:
        if self.failing:
            logger.info(event)
        self.failing = False


def connect(path: str | Path) -> sqlite3.Connection:
    """Open (and create) the database with WAL and a busy timeout."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
    conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute(f"PRAGMA journal_size_limit={WAL_SIZE_LIMIT}")
    return conn


def db_path(state_dir: str | Path) -> Path:
    return Path(state_dir) / DB_FILENAME


@contextmanager
def transaction(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """The store's one way to change tables: everything inside is committed together, or,
    when the block raises (the error goes on), not at all. IMMEDIATE takes the write lock at
    the start, so another process's writer makes it wait (``busy_timeout``) instead of
    failing it halfway. ``conn`` is in autocommit mode (``connect``)."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


class Database:
    """One connection used from worker threads, one call at a time."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.conn = connect(self.path)
        self._lock = threading.Lock()
        self._limiter = trio.CapacityLimiter(1)
        self.checkpoint_rounds = 0  # background checkpoints tried (``checkpoints``)

    def run_sync(self, fn: Callable[[Connection], T]) -> T:
        """``fn(conn)`` now, in this thread (start-up, tools, tests outside trio)."""
        with self._lock:
            return fn(self.conn)

    def write_sync(self, fn: Callable[[Connection], T]) -> T:
        """``fn(conn)`` in one transaction, in this thread."""

        def go(conn: Connection) -> T:
            with transaction(self.conn):
                return fn(conn)

        return self.run_sync(go)

    async def run(self, fn: Callable[[Connection], T]) -> T:
        """Run ``fn(conn)`` in a worker thread. Not abandoned on cancel: a write either
        happens whole or not at all, and the caller learns which."""
        return await trio.to_thread.run_sync(self.run_sync, fn, limiter=self._limiter)

    async def write(self, fn: Callable[[Connection], T]) -> T:
        """``fn(conn)`` in one transaction in a worker thread; rolled back if it raises.
        Not abandoned on cancel (see ``run``)."""
        return await trio.to_thread.run_sync(self.write_sync, fn, limiter=self._limiter)

    async def checkpoints(
        self,
        interval: float = CHECKPOINT_INTERVAL,
        *,
        task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Checkpoint the WAL every ``interval`` seconds from a connection of its own, in its
        own worker thread, until cancelled; meanwhile ``self.conn`` checkpoints only as a
        backstop, at BACKSTOP_PAGES (see the module docstring), and as usual again after."""
        checkpointer = await trio.to_thread.run_sync(connect, self.path)
        limiter = trio.CapacityLimiter(1)
        failing = Failing()  # say so once, not every second, while checkpoints fail
        try:
            await self.run(lambda c: c.execute(f"PRAGMA wal_autocheckpoint={BACKSTOP_PAGES}"))
            task_status.started()
            while True:
                await trio.sleep(interval)
                try:
                    await trio.to_thread.run_sync(_checkpoint, checkpointer, limiter=limiter)
                except sqlite3.Error as e:  # a full disk, an I/O error: try again later
                    failing.failed(log, "store.checkpoint_failed", f"error={e}")
                else:
                    failing.ok(log, "store.checkpoint_recovered")
                self.checkpoint_rounds += 1
        finally:
            with trio.CancelScope(shield=True):
                await trio.to_thread.run_sync(checkpointer.close, limiter=limiter)
                await self.run(
                    lambda c: c.execute(f"PRAGMA wal_autocheckpoint={AUTOCHECKPOINT_PAGES}")
                )

    async def upkeep(
        self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """The database's housekeeping while the daemon runs: here, ``checkpoints``."""
        await self.checkpoints(task_status=task_status)

    def close(self) -> None:
        with self._lock:
            self.conn.close()


def _checkpoint(conn: sqlite3.Connection) -> None:
    # PASSIVE reports "busy" when it could not copy everything (a reader of older pages,
    # another process's checkpoint); the next round copies the rest.
    busy, wal_pages, copied = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
    if busy:
        log.debug("store.checkpoint_busy wal_pages=%s copied=%s", wal_pages, copied)
