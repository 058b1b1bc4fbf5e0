"""Rule state that matters across a restart, in the ``rule_state`` table of the state
database: one JSON row per (rule, key), tagged with the rule's fingerprint so that state of
a rule whose definition changed is not applied to the new definition.

The engine itself never touches SQLite: it hands out ``StateChanges`` and takes restored
``StateRow``s. ``save``/``load`` run in a worker thread (``Database.write``/``run``) for the
daemon; ``save_sync``/``load_sync`` are for tools and tests outside trio. A save is one
transaction.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from typing import Any

import attrs

from alertd.store.sql import Connection, Store, is_shared

SCHEMA = """
CREATE TABLE IF NOT EXISTS rule_state (
    rule TEXT NOT NULL,
    key TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    data TEXT NOT NULL,
    updated REAL NOT NULL,
    PRIMARY KEY (rule, key)
)
"""


@attrs.frozen(kw_only=True)
class StateRow:
    rule: str
    fingerprint: str
    key: str
    data: dict[str, Any] | None  # None: the key has no state any more (delete the row)


@attrs.frozen(kw_only=True)
class StateChanges:
    rows: tuple[StateRow, ...] = ()
    # When set (at start and reload): rows of any other (rule, fingerprint) are deleted.
    keep: frozenset[tuple[str, str]] | None = None

    def __bool__(self) -> bool:
        return bool(self.rows) or self.keep is not None


class RuleStateStore:
    """The ``rule_state`` table in a ``Store`` (on the shared database, every replica's)."""

    def __init__(self, db: Store) -> None:
        self.db = db
        db.run_sync(_create)

    def load_sync(self) -> list[StateRow]:
        return self.db.run_sync(_load)

    async def load(self) -> list[StateRow]:
        return await self.db.run(_load)

    def save_sync(self, changes: StateChanges) -> None:
        self.db.write_sync(lambda conn: _save(conn, changes))

    async def save(self, changes: StateChanges) -> None:
        await self.db.write(lambda conn: _save(conn, changes))


def _create(conn: Connection) -> None:
    if not is_shared(conn):  # PostgreSQL: schema.py migrates
        conn.execute(SCHEMA)


def _load(conn: Connection) -> list[StateRow]:
    rows = conn.execute("SELECT rule, fingerprint, key, data FROM rule_state ORDER BY rule, key")
    out = []
    for rule, fp, key, data in rows:
        try:
            parsed = json.loads(data)
        except ValueError:
            continue  # a damaged row is no state; the rule starts that key afresh
        if isinstance(parsed, dict):
            out.append(StateRow(rule=rule, fingerprint=fp, key=key, data=parsed))
    return out


def _save(conn: Connection, changes: StateChanges) -> None:
    now = time.time()
    if changes.keep is not None:
        stored = conn.execute("SELECT DISTINCT rule, fingerprint FROM rule_state").fetchall()
        for rule, fp in stored:
            if (rule, fp) not in changes.keep:
                conn.execute(
                    "DELETE FROM rule_state WHERE rule = ? AND fingerprint = ?", (rule, fp)
                )
    for row in changes.rows:
        if row.data is None:
            conn.execute("DELETE FROM rule_state WHERE rule = ? AND key = ?", (row.rule, row.key))
        else:
            conn.execute(
                "INSERT INTO rule_state (rule, key, fingerprint, data, updated)"
                " VALUES (?, ?, ?, ?, ?) ON CONFLICT (rule, key) DO UPDATE SET"
                " fingerprint=excluded.fingerprint, data=excluded.data, updated=excluded.updated",
                (row.rule, row.key, row.fingerprint, json.dumps(row.data), now),
            )


def rows_by_rule(rows: Sequence[StateRow]) -> dict[tuple[str, str], list[StateRow]]:
    out: dict[tuple[str, str], list[StateRow]] = {}
    for row in rows:
        out.setdefault((row.rule, row.fingerprint), []).append(row)
    return out
