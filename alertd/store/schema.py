"""The PostgreSQL schema, created and migrated by alertd itself (SQLite's tables are created
by each table module, as they always were).

``schema_version`` holds one row: the number of the last migration applied. ``migrate``
applies the missing ones in order, each in one transaction with the version bump, under a
transaction-level advisory lock, so replicas starting together migrate once, and one
finding a newer schema than it knows refuses to run on it (``SchemaError``). Migrations are
only ever appended: a database at version N is the same whichever alertd brought it there.

Times are Unix seconds in ``DOUBLE PRECISION`` (PostgreSQL's ``REAL`` is four bytes: whole
seconds would be lost).
"""

from __future__ import annotations

from collections.abc import Sequence

from alertd.store.sql import Connection

# Any fixed number, the same in every alertd: the lock replicas take while migrating.
MIGRATION_LOCK = 0x616C657274  # "alert"

MIGRATIONS: Sequence[str] = (
    # 1: the tables of the single daemon's SQLite database.
    """
    CREATE TABLE dispatch_alerts (
        id TEXT PRIMARY KEY,
        state TEXT NOT NULL,
        received DOUBLE PRECISION NOT NULL,
        alert TEXT NOT NULL
    );
    CREATE INDEX dispatch_alerts_state ON dispatch_alerts (state);
    CREATE TABLE outbox (
        key TEXT PRIMARY KEY,
        seq BIGSERIAL NOT NULL,
        channel TEXT NOT NULL,
        url_index INTEGER NOT NULL,
        title TEXT NOT NULL,
        body TEXT NOT NULL,
        alert_ids TEXT NOT NULL,
        status TEXT NOT NULL DEFAULT 'pending',
        attempts INTEGER NOT NULL DEFAULT 0,
        parts_done INTEGER NOT NULL DEFAULT 0,
        next_attempt DOUBLE PRECISION NOT NULL,
        created DOUBLE PRECISION NOT NULL,
        due_since DOUBLE PRECISION NOT NULL,
        updated DOUBLE PRECISION NOT NULL,
        last_error TEXT NOT NULL DEFAULT '',
        severity TEXT NOT NULL DEFAULT 'warning',
        handed BIGINT NOT NULL DEFAULT 0
    );
    CREATE INDEX outbox_due ON outbox (status, channel, url_index, next_attempt);
    CREATE INDEX outbox_age ON outbox (status, due_since);
    CREATE TABLE rule_state (
        rule TEXT NOT NULL,
        key TEXT NOT NULL,
        fingerprint TEXT NOT NULL,
        data TEXT NOT NULL,
        updated DOUBLE PRECISION NOT NULL,
        PRIMARY KEY (rule, key)
    );
    CREATE TABLE silences (
        id TEXT PRIMARY KEY,
        rule TEXT NOT NULL,
        matchers TEXT NOT NULL,
        starts DOUBLE PRECISION NOT NULL,
        ends DOUBLE PRECISION NOT NULL,
        comment TEXT NOT NULL DEFAULT '',
        created_by TEXT NOT NULL DEFAULT ''
    );
    """,
    # 2: delivery rows claimed by one replica at a time, for a lease it renews
    # (notifications.py): a dead replica's rows go to another once its lease ran out.
    """
    ALTER TABLE outbox ADD COLUMN claimed_by TEXT NOT NULL DEFAULT '';
    ALTER TABLE outbox ADD COLUMN lease_until DOUBLE PRECISION NOT NULL DEFAULT 0;
    CREATE INDEX outbox_claims ON outbox (claimed_by) WHERE status = 'pending';
    """,
    # 3: alerts held in a group by one replica's dispatcher, for a lease it renews
    # (alert_states.py): a dead replica's held alerts go to the next that looks.
    """
    ALTER TABLE dispatch_alerts ADD COLUMN held_by TEXT NOT NULL DEFAULT '';
    ALTER TABLE dispatch_alerts ADD COLUMN held_until DOUBLE PRECISION NOT NULL DEFAULT 0;
    CREATE INDEX dispatch_alerts_held ON dispatch_alerts (held_by) WHERE state = 'held';
    """,
    # 4: a claim's token (claims.py): raised whenever a row changes hands, so a process
    # paused past its lease cannot write the outcome of a row another has claimed since.
    """
    ALTER TABLE outbox ADD COLUMN claim BIGINT NOT NULL DEFAULT 0;
    """,
)

VERSION = len(MIGRATIONS)  # the version this alertd expects


class SchemaError(Exception):
    """The database's schema is one this alertd cannot use; the message says why."""


def _statements(script: str) -> list[str]:
    return [s.strip() for s in script.split(";") if s.strip()]


def _create_version_table(conn: Connection) -> None:
    conn.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")


def version(conn: Connection) -> int | None:
    """The schema's version, or None when alertd never created one in this database."""
    row = conn.execute("SELECT to_regclass('schema_version') IS NOT NULL").fetchone()
    if not row[0]:
        return None
    found = conn.execute("SELECT max(version) FROM schema_version").fetchone()
    return None if found[0] is None else int(found[0])


def migrate(conn: Connection, target: int = VERSION) -> int:
    """Bring the schema to ``target`` (default: this alertd's ``VERSION``), inside the
    transaction ``conn`` is in; returns the version found before. ``SchemaError`` for a
    schema newer than ``target``."""
    conn.execute("SELECT pg_advisory_xact_lock(?)", (MIGRATION_LOCK,))
    _create_version_table(conn)
    found = version(conn)
    current = found or 0
    if current > target:
        raise SchemaError(
            f"the database's schema is version {current}, newer than this alertd's "
            f"{target}: upgrade alertd on this replica"
        )
    for number in range(current + 1, target + 1):
        for statement in _statements(MIGRATIONS[number - 1]):
            conn.execute(statement)
    if found is None:
        conn.execute("INSERT INTO schema_version (version) VALUES (?)", (target,))
    elif target != current:
        conn.execute("UPDATE schema_version SET version = ?", (target,))
    return current
