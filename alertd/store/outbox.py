"""The durable outbox: SQLite (WAL, via ``alertd.store.database``) rows for alerts and
notifications.

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
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any, Literal

import attrs
import trio

from alertd.events import Alert
from alertd.store.database import Database

Target = tuple[str, int]  # (channel name, URL index)
FRESH_LIMIT = 1000  # rows kept for a worker that has not taken them; beyond, it reads the table

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


# Ties (rows queued in the same second) go in the order they were queued (rowid), the order
# delivery is handed rows in memory too; the key (a hash) would shuffle them.
_DUE_SQL = (
    "SELECT key, channel, url_index, title, body, alert_ids, status, attempts, parts_done, "
    "next_attempt, created, last_error, severity, due_since FROM outbox WHERE status='pending' "
    "AND channel=? AND url_index=? AND next_attempt<=? ORDER BY due_since, created, rowid LIMIT ?"
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


def _insert_rows(
    conn: sqlite3.Connection, notifications: Sequence[Notification]
) -> list[OutboxRow]:
    """Insert outbox rows (inside the caller's transaction); the rows that were new."""
    added: list[OutboxRow] = []
    for n in notifications:
        due = max(n.created, n.not_before or 0.0)
        ids = json.dumps(list(n.alert_ids))
        cur = conn.execute(
            "INSERT OR IGNORE INTO outbox (key, channel, url_index, title, body, "
            "alert_ids, next_attempt, created, due_since, updated, severity) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (n.key, n.channel, n.url_index, n.title, n.body, ids, due, n.created, due,
             n.created, n.severity),
        )  # fmt: skip
        if cur.rowcount == 1:
            added.append(
                OutboxRow(
                    key=n.key,
                    channel=n.channel,
                    url_index=n.url_index,
                    title=n.title,
                    body=n.body,
                    alert_ids=tuple(n.alert_ids),
                    status="pending",
                    attempts=0,
                    parts_done=0,
                    next_attempt=due,
                    created=n.created,
                    last_error="",
                    severity=n.severity,
                    due_since=due,
                )
            )
    return added


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
        # Rows just committed by ``enqueue``, per subscribed target (a delivery worker), so
        # the worker need not read back what it was just handed; None once more than
        # FRESH_LIMIT piled up unread (the worker then reads the table again).
        self._fresh: dict[Target, list[OutboxRow] | None] = {}
        # Targets enqueued to since ``new_targets`` was last called (for delivery's supervisor).
        self._new_targets: set[Target] = set()

    # -- hand-off to delivery -----------------------------------------------------------------

    def subscribe(self, target: Target) -> None:
        """Start keeping the rows committed for ``target`` from now on (``take_fresh``)."""
        self._fresh[target] = []

    def unsubscribe(self, target: Target) -> None:
        self._fresh.pop(target, None)

    def take_fresh(self, target: Target) -> list[OutboxRow] | None:
        """Rows committed for ``target`` since the last call, in the order they were queued;
        None when some were not kept (too many: read ``due`` instead)."""
        rows = self._fresh.get(target)
        self._fresh[target] = []
        return rows

    def new_targets(self) -> set[Target]:
        """Targets that got rows since the last call."""
        targets, self._new_targets = self._new_targets, set()
        return targets

    def _handed(self, rows: Sequence[OutboxRow]) -> None:
        """Rows are durable now (committed): tell the workers. Invariant 2 holds: a worker
        only ever sees a row after its transaction committed."""
        for row in rows:
            target = (row.channel, row.url_index)
            self._new_targets.add(target)
            if target in self._fresh:
                kept = self._fresh[target]
                if kept is not None:
                    kept.append(row)
                    if len(kept) > FRESH_LIMIT:
                        self._fresh[target] = None
        if rows:
            self.changed()

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
        self,
        notifications: Sequence[Notification],
        *,
        sent_alert_ids: Iterable[str] = (),
        states: Mapping[str, AlertState] | None = None,
    ) -> int:
        """Queue ``notifications`` (a key already queued is ignored) and mark the alerts they
        carry as sent (and other alerts as ``states`` says), in one transaction. Returns how
        many rows were new."""
        updates = [("sent", i) for i in sent_alert_ids]
        updates += [(state, i) for i, state in (states or {}).items()]

        def go(conn: sqlite3.Connection) -> list[OutboxRow]:
            with _Transaction(conn):
                added = _insert_rows(conn, notifications)
                conn.executemany("UPDATE dispatch_alerts SET state=? WHERE id=?", updates)
            return added

        added = await self.db.run(go)
        self._handed(added)
        return len(added)

    async def record_and_enqueue(
        self,
        alerts: Sequence[Alert],
        now: float,
        states: Mapping[str, AlertState],
        notifications: Sequence[Notification],
    ) -> int | None:
        """Remember ``alerts`` in their final ``states`` (every alert has one) and queue
        ``notifications``, in one transaction: for alerts that go out at once (no group
        wait), one round trip instead of two. None, with nothing written, when any alert id
        was seen before (the caller then takes the ordinary way, which drops duplicates)."""
        params = [(a.id, states[a.id], now, alert_to_json(a)) for a in alerts]

        def go(conn: sqlite3.Connection) -> list[OutboxRow] | None:
            conn.execute("BEGIN IMMEDIATE")
            try:
                for p in params:
                    cur = conn.execute(
                        "INSERT OR IGNORE INTO dispatch_alerts (id, state, received, alert) "
                        "VALUES (?, ?, ?, ?)",
                        p,
                    )
                    if cur.rowcount != 1:
                        conn.execute("ROLLBACK")
                        return None
                added = _insert_rows(conn, notifications)
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
            return added

        added = await self.db.run(go)
        if added is None:
            return None
        self._handed(added)
        return len(added)

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
