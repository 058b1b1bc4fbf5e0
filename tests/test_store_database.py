"""The state database's background checkpoints, on a real SQLite file.

The size of the main database file tells whether a checkpoint happened: written pages live
in the WAL until a checkpoint copies them back.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import trio
import trio.testing

from alertd.store import database as store
from alertd.store.database import BACKSTOP_PAGES, WAL_SIZE_LIMIT, Database, db_path

MiB = 1024 * 1024
BLOB = 2 * MiB  # about 500 pages: three of them cross SQLite's 1,000-page autocheckpoint


def write_blob(conn: sqlite3.Connection) -> None:
    conn.execute("CREATE TABLE IF NOT EXISTS blobs (b BLOB)")
    conn.execute("INSERT INTO blobs VALUES (zeroblob(?))", (BLOB,))


async def write_blobs(db: Database, n: int = 3) -> None:
    for _ in range(n):
        await db.run(write_blob)


def sizes(db: Database) -> tuple[int, int]:
    """(main database file, WAL file) in bytes."""
    wal = Path(f"{db.path}-wal")
    return db.path.stat().st_size, wal.stat().st_size if wal.exists() else 0


async def test_without_background_checkpoints_a_commit_checkpoints_itself(
    tmp_path: Path,
) -> None:
    """The control for the test below: SQLite's own checkpoint runs inside a commit."""
    db = Database(db_path(tmp_path))
    try:
        await write_blobs(db)
        main, _ = sizes(db)
        assert main >= 2 * BLOB
    finally:
        db.close()


async def wait_for(condition: Callable[[], bool]) -> None:
    """Poll in real time (a checkpoint runs in a worker thread), for at most 10 s."""
    for _ in range(1000):
        if condition():
            return
        await trio.to_thread.run_sync(time.sleep, 0.01)
    raise AssertionError("condition not met in 10 s")


async def test_commits_leave_checkpoints_to_the_background_task(
    tmp_path: Path, mock_clock: trio.testing.MockClock
) -> None:
    # A clock that moves only when told: autojump would run the checkpoint while a write
    # waits for its worker thread.
    db = Database(db_path(tmp_path))
    try:
        async with trio.open_nursery() as nursery:
            await nursery.start(db.checkpoints, 60.0)
            await write_blobs(db)
            main, wal = sizes(db)
            assert main < BLOB, "a commit checkpointed on the writing connection"
            assert wal > 3 * BLOB  # everything written is still in the WAL

            mock_clock.jump(61)  # the background checkpoint copies it back
            await wait_for(lambda: db.checkpoint_rounds == 1)
            main, _ = sizes(db)
            assert main >= 3 * BLOB

            await db.run(lambda conn: conn.execute("DELETE FROM blobs WHERE rowid = 1"))
            _, wal = sizes(db)
            assert wal <= WAL_SIZE_LIMIT  # the WAL restarted and was cut back
            nursery.cancel_scope.cancel()

        # Stopped: the connection checkpoints by itself again, so the WAL cannot grow forever.
        before, _ = sizes(db)
        await write_blobs(db)
        main, _ = sizes(db)
        assert main > before
    finally:
        db.close()


async def test_a_writer_that_never_pauses_still_bounds_the_wal(
    tmp_path: Path, mock_clock: trio.testing.MockClock
) -> None:
    """Background rounds beside a steady writer rarely copy every frame, so the WAL could
    not start over; the writer's own backstop checkpoint keeps it bounded."""
    db = Database(db_path(tmp_path))
    try:
        async with trio.open_nursery() as nursery:
            await nursery.start(db.checkpoints, 3600.0)  # no background round in this test
            page = await db.run(lambda conn: conn.execute("PRAGMA page_size").fetchone()[0])
            largest = 0
            for _ in range(12):  # 24 MiB in all
                await db.run(write_blob)
                largest = max(largest, sizes(db)[1])
            assert largest <= BACKSTOP_PAGES * page + 2 * BLOB
            assert sizes(db)[0] >= 6 * BLOB  # copied back by the writer's backstop
            nursery.cancel_scope.cancel()
    finally:
        db.close()


async def test_failing_checkpoints_are_reported_once_and_retried(
    tmp_path: Path,
    mock_clock: trio.testing.MockClock,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A checkpoint that fails (a full disk) is one warning, not one a second; the daemon
    goes on, and the next success says so."""
    calls: list[int] = []

    def flaky(conn: sqlite3.Connection) -> None:
        calls.append(1)
        if len(calls) <= 3:
            raise sqlite3.OperationalError("database or disk is full")

    monkeypatch.setattr(store, "_checkpoint", flaky)
    caplog.set_level(logging.INFO, logger="alertd.store.database")
    db = Database(db_path(tmp_path))
    try:
        async with trio.open_nursery() as nursery:
            await nursery.start(db.checkpoints, 1.0)
            for n in range(1, 5):
                mock_clock.jump(1)
                await wait_for(lambda n=n: db.checkpoint_rounds == n)  # type: ignore[misc]
            nursery.cancel_scope.cancel()
    finally:
        db.close()
    assert len(calls) == 4
    said = [
        (r.levelname, r.getMessage()) for r in caplog.records if r.name == "alertd.store.database"
    ]
    assert said == [
        ("WARNING", "store.checkpoint_failed error=database or disk is full (retrying)"),
        ("INFO", "store.checkpoint_recovered"),
    ]


async def test_a_write_that_fails_changes_nothing(tmp_path: Path) -> None:
    """Every statement of a write is undone when its function raises, and the caller gets
    the error; the next write works."""
    db = Database(db_path(tmp_path))
    try:
        await db.write(lambda conn: conn.execute("CREATE TABLE t (n INTEGER PRIMARY KEY)"))

        def two_then_a_clash(conn: sqlite3.Connection) -> None:
            conn.execute("INSERT INTO t VALUES (1)")
            conn.execute("INSERT INTO t VALUES (2)")
            conn.execute("INSERT INTO t VALUES (1)")

        with pytest.raises(sqlite3.IntegrityError):
            await db.write(two_then_a_clash)
        count = lambda conn: conn.execute("SELECT COUNT(*) FROM t").fetchone()[0]  # noqa: E731
        assert await db.run(count) == 0
        await db.write(lambda conn: conn.executemany("INSERT INTO t VALUES (?)", [(1,), (2,)]))
        assert await db.run(count) == 2
        assert db.write_sync(count) == 2
    finally:
        db.close()
