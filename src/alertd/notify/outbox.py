"""The durable outbox: SQLite (WAL, via ``alertd.store``) rows for alerts and notifications.

Two tables:

- ``dispatch_alerts``: every alert dispatch accepted, by its id. ``INSERT OR IGNORE`` on the id
  is the dedup: the same alert seen twice (a replayed frame, a restart) is handled once. An
  alert waiting in a group is ``held`` here, so a crash during group wait loses nothing.
- ``outbox``: one row per (notification, channel URL), keyed by an idempotency key, with
  ``status`` pending / delivered / expired / silenced, ``attempts``, ``next_attempt``,
  ``created`` (when queued) and ``due_since`` (when it became due: ``created``, or the end of
  the quiet hours it was held for; ``dispatch.max_age`` counts from here, so a hold is never
  mistaken for a failing channel). Unix seconds. Queuing a notification and marking its
  alerts ``sent`` is one transaction.

Delivery marks a row delivered only after the service accepted it, so after a crash a row is
sent again at most once more for the message that was in flight (at-least-once), and a
delivered row is never sent again.

All calls go through ``Database.run`` (a worker thread); ``changed()`` wakes delivery tasks
when rows were added or became due.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any, Literal

import attrs
import trio

from alertd.events import Alert
from alertd.store import Database

Status = Literal["pending", "delivered", "expired", "silenced"]
AlertState = Literal["held", "sent", "silenced", "inhibited", "unrouted"]

SCHEMA = """
CREATE TABLE IF NOT EXISTS dispatch_alerts (
    id TEXT PRIMARY KEY,
    state TEXT NOT NULL,
    received REAL NOT NULL,
    alert TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS dispatch_alerts_state ON dispatch_alerts (state);
CREATE TABLE IF NOT EXISTS outbox (
    key TEXT PRIMARY KEY,
    channel TEXT NOT NULL,
    url_index INTEGER NOT NULL,
    title TEXT NOT NULL,
    body TEXT NOT NULL,
    alert_ids TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'pending',
    attempts INTEGER NOT NULL DEFAULT 0,
    parts_done INTEGER NOT NULL DEFAULT 0,
    next_attempt REAL NOT NULL,
    created REAL NOT NULL,
    due_since REAL NOT NULL,
    updated REAL NOT NULL,
    last_error TEXT NOT NULL DEFAULT '',
    severity TEXT NOT NULL DEFAULT 'warning'
);
CREATE INDEX IF NOT EXISTS outbox_due ON outbox (status, channel, url_index, next_attempt);
"""


@attrs.frozen(kw_only=True)
class Notification:
    """One message for one URL of one channel. ``not_before`` (Unix seconds) holds it back,
    for quiet hours."""

    key: str
    channel: str
    url_index: int
    title: str
    body: str
    alert_ids: tuple[str, ...] = ()
    created: float
    not_before: float | None = None
    severity: str = "warning"  # the highest severity among the alerts it carries


@attrs.frozen(kw_only=True)
class OutboxRow:
    key: str
    channel: str
    url_index: int
    title: str
    body: str
    alert_ids: tuple[str, ...]
    status: Status
    attempts: int
    parts_done: int
    next_attempt: float
    created: float
    last_error: str
    severity: str = "warning"
    due_since: float  # when the row became due (after quiet hours): max_age counts from here


def notification_key(channel: str, url_index: int, alert_ids: Iterable[str]) -> str:
    """The idempotency key: the same alerts to the same URL are one notification."""
    text = "\n".join([channel, str(url_index), *sorted(alert_ids)])
    return hashlib.sha256(text.encode()).hexdigest()[:32]


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
    )


_DUE_SQL = (
    "SELECT key, channel, url_index, title, body, alert_ids, status, attempts, parts_done, "
    "next_attempt, created, last_error, severity, due_since FROM outbox WHERE status='pending' "
    "AND channel=? AND url_index=? AND next_attempt<=? ORDER BY due_since, created, key LIMIT ?"
)
_ROWS_SQL = (
    "SELECT key, channel, url_index, title, body, alert_ids, status, attempts, parts_done, "
    "next_attempt, created, last_error, severity, due_since FROM outbox WHERE status=? OR ? "
    "ORDER BY created, key"
)


def _row(r: Sequence[Any]) -> OutboxRow:
    return OutboxRow(
        key=r[0],
        channel=r[1],
        url_index=r[2],
        title=r[3],
        body=r[4],
        alert_ids=tuple(json.loads(r[5])),
        status=r[6],
        attempts=r[7],
        parts_done=r[8],
        next_attempt=r[9],
        created=r[10],
        last_error=r[11],
        severity=r[12],
        due_since=r[13],
    )


class _Transaction:
    """``BEGIN IMMEDIATE`` ... ``COMMIT`` (the connection is in autocommit mode)."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def __enter__(self) -> sqlite3.Connection:
        self.conn.execute("BEGIN IMMEDIATE")
        return self.conn

    def __exit__(self, exc_type: object, *_: object) -> None:
        self.conn.execute("ROLLBACK" if exc_type is not None else "COMMIT")


class Outbox:
    """The outbox tables in ``db``; created on construction (a quick synchronous call, made
    once at start-up)."""

    def __init__(self, db: Database) -> None:
        self.db = db
        db.run_sync(lambda conn: conn.executescript(SCHEMA))
        self._changed = trio.Event()

    # -- wake-ups -----------------------------------------------------------------------------

    def changed(self) -> None:
        """Wake everyone waiting on the current ``change_event``."""
        self._changed.set()
        self._changed = trio.Event()

    def change_event(self) -> trio.Event:
        """An event set at the next change. Take it *before* reading rows, then wait on it,
        so a change between the read and the wait is not missed."""
        return self._changed

    # -- alerts (dispatch) --------------------------------------------------------------------

    async def record_alert(self, alert: Alert, now: float, state: AlertState = "held") -> bool:
        """Remember ``alert``; False when its id was seen before (a duplicate)."""
        payload = alert_to_json(alert)

        def go(conn: sqlite3.Connection) -> bool:
            cur = conn.execute(
                "INSERT OR IGNORE INTO dispatch_alerts (id, state, received, alert) "
                "VALUES (?, ?, ?, ?)",
                (alert.id, state, now, payload),
            )
            return cur.rowcount == 1

        return await self.db.run(go)

    async def record_alerts(self, alerts: Sequence[Alert], now: float) -> list[Alert]:
        """Remember a batch of alerts in one transaction; returns the ones not seen before."""
        payloads = [(a.id, now, alert_to_json(a)) for a in alerts]

        def go(conn: sqlite3.Connection) -> list[bool]:
            with _Transaction(conn):
                return [
                    conn.execute(
                        "INSERT OR IGNORE INTO dispatch_alerts (id, state, received, alert) "
                        "VALUES (?, 'held', ?, ?)",
                        p,
                    ).rowcount
                    == 1
                    for p in payloads
                ]

        fresh = await self.db.run(go)
        return [a for a, new in zip(alerts, fresh, strict=True) if new]

    async def set_alert_state(self, alert_ids: Iterable[str], state: AlertState) -> None:
        ids = [(state, i) for i in alert_ids]
        await self.db.run(
            lambda conn: conn.executemany("UPDATE dispatch_alerts SET state=? WHERE id=?", ids)
        )

    async def alerts(self, alert_ids: Iterable[str]) -> dict[str, Alert]:
        """The stored alerts with these ids (ids not stored, e.g. pruned, are left out)."""
        ids = json.dumps(sorted(set(alert_ids)))
        rows = await self.db.run(
            lambda conn: conn.execute(
                # json_each: one parameter for any number of ids (no SQLite variable limit).
                "SELECT id, alert FROM dispatch_alerts "
                "WHERE id IN (SELECT value FROM json_each(?))",
                (ids,),
            ).fetchall()
        )
        return {r[0]: alert_from_json(r[1]) for r in rows}

    async def held_alerts(self) -> list[Alert]:
        """Alerts accepted but not yet queued (waiting in a group when the process stopped)."""
        rows = await self.db.run(
            lambda conn: conn.execute(
                "SELECT alert FROM dispatch_alerts WHERE state='held' ORDER BY received"
            ).fetchall()
        )
        return [alert_from_json(r[0]) for r in rows]

    # -- notifications ------------------------------------------------------------------------

    async def enqueue(
        self, notifications: Sequence[Notification], *, sent_alert_ids: Iterable[str] = ()
    ) -> int:
        """Queue ``notifications`` (a key already queued is ignored) and mark the alerts they
        carry as sent, in one transaction. Returns how many rows were new."""
        ids = list(sent_alert_ids)

        def go(conn: sqlite3.Connection) -> int:
            added = 0
            with _Transaction(conn):
                for n in notifications:
                    due = max(n.created, n.not_before or 0.0)
                    cur = conn.execute(
                        "INSERT OR IGNORE INTO outbox (key, channel, url_index, title, body, "
                        "alert_ids, next_attempt, created, due_since, updated, severity) "
                        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                        (
                            n.key,
                            n.channel,
                            n.url_index,
                            n.title,
                            n.body,
                            json.dumps(list(n.alert_ids)),
                            due,
                            n.created,
                            due,
                            n.created,
                            n.severity,
                        ),
                    )
                    added += cur.rowcount
                conn.executemany(
                    "UPDATE dispatch_alerts SET state='sent' WHERE id=?", [(i,) for i in ids]
                )
            return added

        added = await self.db.run(go)
        if added:
            self.changed()
        return added

    async def pending_count(self) -> int:
        """How many (notification, URL) rows wait for delivery."""
        row = await self.db.run(
            lambda conn: conn.execute(
                "SELECT COUNT(*) FROM outbox WHERE status='pending'"
            ).fetchone()
        )
        return int(row[0])

    async def pending_targets(self) -> set[tuple[str, int]]:
        """The (channel, URL index) pairs that have pending rows."""
        rows = await self.db.run(
            lambda conn: conn.execute(
                "SELECT DISTINCT channel, url_index FROM outbox WHERE status='pending'"
            ).fetchall()
        )
        return {(r[0], r[1]) for r in rows}

    async def due(self, channel: str, url_index: int, now: float, limit: int) -> list[OutboxRow]:
        """Pending rows for one URL whose time has come, oldest first."""
        rows = await self.db.run(
            lambda conn: conn.execute(
                _DUE_SQL,
                (channel, url_index, now, limit),
            ).fetchall()
        )
        return [_row(r) for r in rows]

    async def next_due(self, channel: str, url_index: int) -> float | None:
        """When the next pending row for one URL is due (Unix seconds), None if none is."""
        row = await self.db.run(
            lambda conn: conn.execute(
                "SELECT MIN(next_attempt) FROM outbox WHERE status='pending' AND channel=? "
                "AND url_index=?",
                (channel, url_index),
            ).fetchone()
        )
        return None if row[0] is None else float(row[0])

    async def rows(self, *, status: Status | None = None) -> list[OutboxRow]:
        """Every row (optionally of one status), oldest first: for tests and inspection."""
        rows = await self.db.run(
            lambda conn: conn.execute(_ROWS_SQL, (status, status is None)).fetchall()
        )
        return [_row(r) for r in rows]

    async def mark_delivered(self, keys: Iterable[str], now: float) -> None:
        params = [(now, k) for k in keys]
        await self.db.run(
            lambda conn: conn.executemany(
                "UPDATE outbox SET status='delivered', updated=?, last_error='' "
                "WHERE key=? AND status='pending'",
                params,
            )
        )

    async def mark_parts_done(self, key: str, parts_done: int, now: float) -> None:
        """Remember that the first ``parts_done`` parts of a split message went out."""
        await self.db.run(
            lambda conn: conn.execute(
                "UPDATE outbox SET parts_done=?, updated=? WHERE key=?", (parts_done, now, key)
            )
        )

    async def mark_retry(
        self, keys: Iterable[str], *, next_attempt: float, error: str, now: float
    ) -> None:
        params = [(next_attempt, error, now, k) for k in keys]
        await self.db.run(
            lambda conn: conn.executemany(
                "UPDATE outbox SET attempts=attempts+1, next_attempt=?, last_error=?, updated=? "
                "WHERE key=? AND status='pending'",
                params,
            )
        )

    async def mark_expired(self, keys: Iterable[str], *, error: str, now: float) -> None:
        params = [(error, now, k) for k in keys]
        await self.db.run(
            lambda conn: conn.executemany(
                "UPDATE outbox SET status='expired', last_error=?, updated=? "
                "WHERE key=? AND status='pending'",
                params,
            )
        )

    async def mark_silenced(self, keys: Iterable[str], *, reason: str, now: float) -> None:
        """Finish rows whose every alert was silenced after they were queued."""
        params = [(reason, now, k) for k in keys]
        await self.db.run(
            lambda conn: conn.executemany(
                "UPDATE outbox SET status='silenced', last_error=?, updated=? "
                "WHERE key=? AND status='pending'",
                params,
            )
        )

    async def prune(self, older_than: float) -> int:
        """Forget finished rows and alerts last touched before ``older_than``."""

        def go(conn: sqlite3.Connection) -> int:
            with _Transaction(conn):
                cur = conn.execute(
                    "DELETE FROM outbox WHERE status!='pending' AND updated<?", (older_than,)
                )
                n = cur.rowcount
                cur = conn.execute(
                    "DELETE FROM dispatch_alerts WHERE state!='held' AND received<?",
                    (older_than,),
                )
                return n + cur.rowcount

        return await self.db.run(go)
