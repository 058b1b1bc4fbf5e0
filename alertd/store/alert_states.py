"""The ``dispatch_alerts`` table: every alert dispatch accepted, by its id, with its state.

``ON CONFLICT DO NOTHING`` on the id is the dedup: the same alert seen twice (a replayed
frame, a restart, two replicas that saw the same frame) is handled once. An alert waiting in
a group is ``held`` here, so a crash during group wait loses nothing; the alert itself is
kept as JSON, so delivery can re-render a notification without the alerts a silence added
later covers.

Plain functions over a connection: callers run them through ``Database`` (``write`` for
changes), alone or in one transaction with the ``notifications`` table (``outbox.Outbox``).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any, Literal

from alertd.events import Alert
from alertd.store.sql import Connection, claims, is_shared

AlertState = Literal["held", "sent", "silenced", "inhibited", "unrouted"]

SCHEMA = """
CREATE TABLE IF NOT EXISTS dispatch_alerts (
    id TEXT PRIMARY KEY,
    state TEXT NOT NULL,
    received REAL NOT NULL,
    alert TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS dispatch_alerts_state ON dispatch_alerts (state);
"""

_INSERT = (
    "INSERT INTO dispatch_alerts (id, state, received, alert) VALUES (?, ?, ?, ?) "
    "ON CONFLICT DO NOTHING"
)


def create(conn: Connection) -> None:
    if not is_shared(conn):  # PostgreSQL: schema.py migrates
        conn.executescript(SCHEMA)


def alert_to_json(alert: Alert) -> str:
    return json.dumps(
        {
            "id": alert.id,
            "rule": alert.rule,
            "key": alert.key,
            "status": alert.status,
            "severity": alert.severity,
            "title": alert.title,
            "body": alert.body,
            "channels": list(alert.channels),
            "account": alert.account,
            "event_kind": alert.event_kind,
            "labels": dict(alert.labels),
            "created": alert.created.isoformat(),
            "fields": dict(alert.fields),
        }
    )


def alert_from_json(text: str) -> Alert:
    d: dict[str, Any] = json.loads(text)
    return Alert(
        id=d["id"],
        rule=d["rule"],
        key=d["key"],
        status=d["status"],
        severity=d["severity"],
        title=d["title"],
        body=d["body"],
        channels=tuple(d["channels"]),
        account=d["account"],
        event_kind=d["event_kind"],
        labels=d["labels"],
        created=datetime.fromisoformat(d["created"]),
        fields=d.get("fields", {}),  # rows stored before alerts carried their fields: none
    )


# PostgreSQL: an alert is held by the process whose dispatcher groups it (``held_by``), for
# a lease it renews (claims.renew_claims): a held alert another live replica groups is its
# own, one a dead replica held is free for the next to look (``held``).
_PG_INSERT = (
    "INSERT INTO dispatch_alerts (id, state, received, alert, held_by, held_until) "
    "VALUES (?, ?, ?, ?, ?, extract(epoch from clock_timestamp())+?) ON CONFLICT DO NOTHING"
)
_PG_HELD = (
    "UPDATE dispatch_alerts SET held_by=?, held_until=extract(epoch from clock_timestamp())+? "
    "WHERE state='held' AND (held_by=? OR held_by='' "
    "OR held_until<extract(epoch from clock_timestamp())) RETURNING received, alert"
)


def insert(conn: Connection, alerts: Sequence[tuple[Alert, AlertState]], now: float) -> list[bool]:
    """Remember each (alert, state); per alert, whether it was new (False: its id was
    seen before, and nothing changed for it)."""
    shared = claims(conn)
    if shared is None:
        return [
            conn.execute(_INSERT, (alert.id, state, now, alert_to_json(alert))).rowcount == 1
            for alert, state in alerts
        ]
    return [
        conn.execute(
            _PG_INSERT,
            (alert.id, state, now, alert_to_json(alert), shared.claimant, shared.lease),
        ).rowcount
        == 1
        for alert, state in alerts
    ]


def set_states(conn: Connection, states: Iterable[tuple[str, AlertState]]) -> None:
    """Set each (alert id, state)."""
    conn.executemany("UPDATE dispatch_alerts SET state=? WHERE id=?", [(s, i) for i, s in states])


def load(conn: Connection, alert_ids: Iterable[str]) -> dict[str, Alert]:
    """The stored alerts with these ids (ids not stored, e.g. pruned, are left out)."""
    ids = sorted(set(alert_ids))
    args: object
    if is_shared(conn):
        sql, args = "SELECT id, alert FROM dispatch_alerts WHERE id = ANY(?)", ids
    else:
        # json_each: one parameter for any number of ids (no SQLite variable limit).
        sql = "SELECT id, alert FROM dispatch_alerts WHERE id IN (SELECT value FROM json_each(?))"
        args = json.dumps(ids)
    rows = conn.execute(sql, (args,)).fetchall()
    return {r[0]: alert_from_json(r[1]) for r in rows}


def held(conn: Connection) -> list[Alert]:
    """Alerts accepted but not yet queued (waiting in a group when the process stopped),
    oldest first; on the shared database, those this process holds and those no live one
    does (a dead replica's), held by this one from now on."""
    shared = claims(conn)
    if shared is None:
        rows = conn.execute(
            "SELECT received, alert FROM dispatch_alerts WHERE state='held' ORDER BY received"
        ).fetchall()
    else:
        rows = conn.execute(_PG_HELD, (shared.claimant, shared.lease, shared.claimant)).fetchall()
        rows.sort(key=lambda r: float(r[0]))
    return [alert_from_json(r[1]) for r in rows]


def prune(conn: Connection, older_than: float) -> int:
    """Forget alerts no longer held that were received before ``older_than``."""
    cur = conn.execute(
        "DELETE FROM dispatch_alerts WHERE state!='held' AND received<?", (older_than,)
    )
    return cur.rowcount
