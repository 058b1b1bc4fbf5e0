"""The SQLite state database in the state directory: one file, WAL, shared by the outbox,
rule state and silences (each module creates its own tables).

SQLite calls block, so async code goes through ``Database.run``, which runs them in a worker
thread, one at a time (invariant 6). Command-line tools may use ``connect`` directly.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import trio

T = TypeVar("T")

DB_FILENAME = "alertd.db"
BUSY_TIMEOUT_MS = 5000  # another process (alertd silence add) may hold the write lock briefly


def connect(path: str | Path) -> sqlite3.Connection:
    """Open (and create) the database with WAL and a busy timeout."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
    conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    return conn


def db_path(state_dir: str | Path) -> Path:
    return Path(state_dir) / DB_FILENAME


class Database:
    """One connection used from worker threads, one call at a time."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.conn = connect(self.path)
        self._lock = threading.Lock()
        self._limiter = trio.CapacityLimiter(1)

    def run_sync(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        with self._lock:
            return fn(self.conn)

    async def run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``fn(conn)`` in a worker thread. Not abandoned on cancel: a write either
        happens whole or not at all, and the caller learns which."""
        return await trio.to_thread.run_sync(self.run_sync, fn, limiter=self._limiter)

    def close(self) -> None:
        with self._lock:
            self.conn.close()
