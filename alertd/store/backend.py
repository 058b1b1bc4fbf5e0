"""Which store a daemon runs on: SQLite in its state directory (the default: one process,
nothing to set up), or PostgreSQL shared by replicas when ``[daemon] database`` is set."""

from __future__ import annotations

import logging
import sqlite3
from pathlib import Path

from alertd.config.database import replica_name
from alertd.config.model import DaemonSettings
from alertd.store.database import Database, db_path
from alertd.store.spool import SPOOL_FILENAME, Spool
from alertd.store.sql import Store

log = logging.getLogger(__name__)


class StoreError(Exception):
    """The store cannot be opened; the message (one line) says which and why."""


def open_store(daemon: DaemonSettings, state_dir: Path) -> Store:
    """The store ``daemon`` asks for, opened (PostgreSQL: reached and migrated, with its
    spool in ``state_dir`` for the times it is away, and what that held drained)."""
    if daemon.database is not None:
        # Imported here: psycopg only for those who use it.
        from alertd.store.postgres import DatabaseUnavailable, PostgresDatabase
        from alertd.store.schema import SchemaError

        replica = replica_name(daemon)
        spool = _open_spool(state_dir, daemon.spool_max)
        try:
            db = PostgresDatabase(
                daemon.database.reveal(),
                replica=replica,
                lease=daemon.delivery_lease,
                retry_for=daemon.database_retry,
                spool=spool,
            )
            # What a process left spooled (it stopped or crashed while the database was away)
            # goes to the shared tables before any stage reads them.
            moved = spool.drain_sync(db.write_sync)
        except (DatabaseUnavailable, SchemaError) as e:
            spool.close()
            raise StoreError(f"{e} ([daemon] database)") from e
        if moved:
            log.info("store.spool_drained alerts=%d (left by an earlier run)", moved)
        log.info("store.shared database=%s replica=%s", db.where, replica)
        return db
    try:
        return Database(db_path(state_dir))
    except (OSError, sqlite3.Error) as e:
        raise StoreError(
            f"cannot open the state database in {state_dir}: {e} "
            "(set [daemon] state_dir or --state-dir to a writable directory)"
        ) from e


def _open_spool(state_dir: Path, capacity: int) -> Spool:
    try:
        return Spool(state_dir / SPOOL_FILENAME, capacity=capacity)
    except (OSError, sqlite3.Error) as e:
        raise StoreError(
            f"cannot open the spool in {state_dir}: {e} (it keeps alerts while the database "
            "is away; set [daemon] state_dir or --state-dir to a writable directory)"
        ) from e
