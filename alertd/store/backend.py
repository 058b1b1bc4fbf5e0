"""Which store a daemon runs on: SQLite in its state directory (the default: one process,
nothing to set up), or PostgreSQL shared by replicas when ``[daemon] database`` is set."""

from __future__ import annotations

import logging
import sqlite3
from pathlib import Path

from alertd.config.database import replica_name
from alertd.config.model import DaemonSettings
from alertd.store.database import Database, db_path
from alertd.store.sql import Store

log = logging.getLogger(__name__)


class StoreError(Exception):
    """The store cannot be opened; the message (one line) says which and why."""


def open_store(daemon: DaemonSettings, state_dir: Path) -> Store:
    """The store ``daemon`` asks for, opened (PostgreSQL: reached and migrated)."""
    if daemon.database is not None:
        # Imported here: psycopg only for those who use it.
        from alertd.store.postgres import DatabaseUnavailable, PostgresDatabase
        from alertd.store.schema import SchemaError

        replica = replica_name(daemon)
        try:
            db = PostgresDatabase(
                daemon.database.reveal(), replica=replica, lease=daemon.delivery_lease
            )
        except (DatabaseUnavailable, SchemaError) as e:
            raise StoreError(f"{e} ([daemon] database)") from e
        log.info("store.shared database=%s replica=%s", db.where, replica)
        return db
    try:
        return Database(db_path(state_dir))
    except (OSError, sqlite3.Error) as e:
        raise StoreError(
            f"cannot open the state database in {state_dir}: {e} "
            "(set [daemon] state_dir or --state-dir to a writable directory)"
        ) from e
