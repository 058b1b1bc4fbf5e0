"""The ``outbox`` table: one row per (notification, channel URL), keyed by an idempotency key.

Columns: ``status`` pending / delivered / expired / silenced / inhibited, ``attempts``,
``parts_done`` (parts of a split message already accepted), ``next_attempt``, ``created``
(when queued) and ``due_since`` (when it became due: ``created``, or the end of the quiet
hours it was held for; ``dispatch.max_age`` counts from here, so a hold is never mistaken for
a failing channel). Times are Unix seconds.

``handed`` says whether the row may be in a service's hands: ``NONE``, ``REPEAT`` (a send of
it was cut off before: any copy may be a second one), or else the epoch of the process that
handed it over (``Outbox.epoch``), written down *before* the send and cleared by a failed
attempt's record. A pending row that a later process finds handed over by another epoch was
cut off by a crash or stop; it is a ``REPEAT`` from then on, and every later copy says so
(``messages.notices``).

Only rows still ``pending`` change: every mark below leaves a finished row as it is, so a
late or repeated mark cannot undo a delivery.

On the database replicas share (PostgreSQL: ``sql.claims(conn)`` is set), a pending row
is also *claimed* by one process (``claimed_by``) until ``lease_until`` (the database's clock,
Unix seconds): the process that queued it, or the one that read it due (``SELECT ... FOR
UPDATE SKIP LOCKED``: two replicas never take the same row). A live process renews its claims
(``renew_claims``, every third of the lease) and releases them when it stops; a row whose
claimant died is taken by another once the lease ran out, and when the dead one had handed it
over, its epoch in ``handed`` makes the copy a possible repeat, as after a crash of a single
daemon. Each such query is written twice, side by side: SQLite's and PostgreSQL's.

Plain functions over a connection: callers run them through ``Database`` (``write`` for
changes), alone or in one transaction with ``alert_states`` (``outbox.Outbox``).
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Literal

import attrs

from alertd.store.claims import fenced, hand_over, holdings
from alertd.store.sql import Connection, claims

Status = Literal["pending", "delivered", "expired", "silenced", "inhibited"]
Finished = Literal["expired", "silenced", "inhibited"]  # given up on, or muted before sending

# ``handed``: in no service's hands; a hand-off was cut off before, so any copy may be a
# second one. Any other value is the epoch of the process that handed the row over.
NONE, REPEAT = 0, -1

SCHEMA = """
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
    severity TEXT NOT NULL DEFAULT 'warning',
    handed INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS outbox_due ON outbox (status, channel, url_index, next_attempt);
-- The oldest pending row in one step (statistics), however long the backlog.
CREATE INDEX IF NOT EXISTS outbox_age ON outbox (status, due_since);
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
    handed: int = NONE  # as read: NONE, REPEAT, or the epoch of the process that handed it over


@attrs.frozen(kw_only=True)
class Pending:
    """What waits for delivery: rows per channel, and since when the oldest has been due."""

    by_channel: dict[str, int]
    oldest_due: float | None  # Unix seconds; None when nothing is pending


def notification_key(channel: str, url_index: int, alert_ids: Iterable[str]) -> str:
    """The idempotency key: the same alerts to the same URL are one notification."""
    text = "\n".join([channel, str(url_index), *sorted(alert_ids)])
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def create(conn: Connection) -> None:
    if claims(conn) is not None:
        return  # PostgreSQL: schema.py migrates
    conn.executescript(SCHEMA)
    columns = {r[1] for r in conn.execute("PRAGMA table_info(outbox)")}
    if "handed" not in columns:  # a state database from before handed existed
        conn.execute("ALTER TABLE outbox ADD COLUMN handed INTEGER NOT NULL DEFAULT 0")


# Ties (rows queued in the same second) go in the order they were queued (rowid), the order
# delivery is handed rows in memory too; the key (a hash) would shuffle them.
_DUE_SQL = (
    "SELECT key, channel, url_index, title, body, alert_ids, status, attempts, parts_done, "
    "next_attempt, created, last_error, severity, due_since, handed FROM outbox "
    "WHERE status='pending' AND channel=? AND url_index=? AND next_attempt<=? "
    "ORDER BY due_since, created, rowid LIMIT ?"
)
# PostgreSQL only. Leases are on the database's clock (replicas' clocks may differ a little).
# A row is free for a claimant (the "claimed_by=?" parameter) when it holds it, nobody does,
# or the lease ran out. Due rows of one URL are claimed and returned in one statement: rows
# another live process holds are left alone, rows another transaction is claiming right now
# are skipped, not waited for.
# The claim token (``claims``) goes up whenever the row changes hands or its lease ran out.
_PG_CLAIM_DUE = (
    "UPDATE outbox SET claim=CASE WHEN claimed_by=? "
    "AND lease_until>=extract(epoch from clock_timestamp()) THEN claim ELSE claim+1 END, "
    "claimed_by=?, lease_until=extract(epoch from clock_timestamp())+? "
    "WHERE key IN (SELECT key FROM outbox WHERE status='pending' AND channel=? "
    "AND url_index=? AND next_attempt<=? AND (claimed_by=? OR claimed_by='' "
    "OR lease_until<extract(epoch from clock_timestamp())) "
    "ORDER BY due_since, created, seq LIMIT ? FOR UPDATE SKIP LOCKED) "
    "RETURNING key, channel, url_index, title, body, alert_ids, status, attempts, parts_done, "
    "next_attempt, created, last_error, severity, due_since, handed, seq, claim"
)
_PG_INSERT = (
    "INSERT INTO outbox (key, channel, url_index, title, body, alert_ids, next_attempt, "
    "created, due_since, updated, severity, handed, claimed_by, lease_until, claim) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, extract(epoch from clock_timestamp())+?, 1) "
    "ON CONFLICT DO NOTHING"
)
_PG_NEXT_DUE = (
    "SELECT MIN(CASE WHEN claimed_by=? OR claimed_by='' "
    "OR lease_until<extract(epoch from clock_timestamp()) THEN next_attempt "
    "ELSE GREATEST(next_attempt, lease_until) END) "
    "FROM outbox WHERE status='pending' AND channel=? AND url_index=?"
)
_PG_MARK_HANDED = (
    "UPDATE outbox SET handed=?, claimed_by=?, "
    "lease_until=extract(epoch from clock_timestamp())+? WHERE key=? AND status='pending' "
    "AND (claimed_by=? OR claimed_by='' OR lease_until<extract(epoch from clock_timestamp())) "
    "AND claim=?"
)
_PG_PENDING_COUNT = (
    "SELECT COUNT(*) FROM outbox WHERE status='pending' AND (claimed_by=? OR claimed_by='' "
    "OR lease_until<extract(epoch from clock_timestamp()))"
)
_ROWS_SQL = (
    "SELECT key, channel, url_index, title, body, alert_ids, status, attempts, parts_done, "
    "next_attempt, created, last_error, severity, due_since, handed FROM outbox "
    "WHERE status=? OR ? ORDER BY created, key"
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
        handed=r[14],
    )


def insert(
    conn: Connection,
    notifications: Sequence[Notification],
    *,
    handed: Mapping[str, int] | None = None,
) -> list[OutboxRow]:
    """Queue ``notifications`` (a key already queued is left as it is); the rows that were
    new, as delivery will read them. ``handed``: keys already as good as handed over (to a
    worker that sends them at once), with the epoch to write down."""
    handed = handed or {}
    shared = claims(conn)
    at = time.monotonic()
    added: list[OutboxRow] = []
    for n in notifications:
        due = max(n.created, n.not_before or 0.0)
        ids = json.dumps(list(n.alert_ids))
        values = (n.key, n.channel, n.url_index, n.title, n.body, ids, due, n.created, due,
                  n.created, n.severity, handed.get(n.key, NONE))  # fmt: skip
        if shared is None:
            cur = conn.execute(
                "INSERT OR IGNORE INTO outbox (key, channel, url_index, title, body, "
                "alert_ids, next_attempt, created, due_since, updated, severity, handed) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                values,
            )
        else:  # queued claimed: this process hands it to its own delivery
            cur = conn.execute(_PG_INSERT, (*values, shared.claimant, shared.lease))
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
                    handed=handed.get(n.key, NONE),
                )
            )
    if shared is not None:  # claim token 1 (store/claims)
        holdings(shared).claimed([(r.key, 1) for r in added], at)
    return added


# -- reads ------------------------------------------------------------------------------------


def due(conn: Connection, channel: str, url_index: int, now: float, limit: int) -> list[OutboxRow]:
    """Pending rows for one URL whose time has come, oldest first; on the shared database,
    those free for this process, claimed by it now."""
    shared = claims(conn)
    if shared is None:
        return [_row(r) for r in conn.execute(_DUE_SQL, (channel, url_index, now, limit))]
    at = time.monotonic()
    found = conn.execute(
        _PG_CLAIM_DUE,
        (shared.claimant, shared.claimant, shared.lease, channel, url_index, now,
         shared.claimant, limit),
    ).fetchall()  # fmt: skip
    holdings(shared).claimed([(r[0], r[16]) for r in found], at)
    found.sort(key=lambda r: (r[13], r[10], r[15]))  # due_since, created, seq
    return [_row(r) for r in found]


def next_due(conn: Connection, channel: str, url_index: int) -> float | None:
    """When the next pending row for one URL is due (Unix seconds), None if none is; on the
    shared database, a row another live process holds is due for this one when its lease
    runs out (it is renewed meanwhile: this process looks again then)."""
    shared = claims(conn)
    if shared is None:
        sql = (
            "SELECT MIN(next_attempt) FROM outbox "
            "WHERE status='pending' AND channel=? AND url_index=?"
        )
        args: tuple[Any, ...] = (channel, url_index)
    else:
        sql = _PG_NEXT_DUE
        args = (shared.claimant, channel, url_index)
    (when,) = conn.execute(sql, args).fetchone()
    return None if when is None else float(when)


def pending_count(conn: Connection) -> int:
    """Rows waiting for delivery by this process: on the shared database, rows another live
    process holds are that one's to send (``pending`` counts every row)."""
    shared = claims(conn)
    if shared is None:
        (count,) = conn.execute("SELECT COUNT(*) FROM outbox WHERE status='pending'").fetchone()
    else:
        (count,) = conn.execute(_PG_PENDING_COUNT, (shared.claimant,)).fetchone()
    return int(count)


def pending_targets(conn: Connection) -> set[tuple[str, int]]:
    """The (channel, URL index) pairs that have pending rows."""
    rows = conn.execute("SELECT DISTINCT channel, url_index FROM outbox WHERE status='pending'")
    return {(r[0], r[1]) for r in rows}


def pending(conn: Connection) -> Pending:
    counts = conn.execute(
        "SELECT channel, COUNT(*) FROM outbox WHERE status='pending' GROUP BY channel"
    )
    by_channel = {str(channel): int(n) for channel, n in counts}
    (oldest,) = conn.execute("SELECT MIN(due_since) FROM outbox WHERE status='pending'").fetchone()
    return Pending(by_channel=by_channel, oldest_due=None if oldest is None else float(oldest))


def rows(conn: Connection, status: Status | None = None) -> list[OutboxRow]:
    """Every row (optionally of one status), oldest first: for tests and inspection."""
    return [_row(r) for r in conn.execute(_ROWS_SQL, (status, status is None))]


# -- marks (pending rows only) -----------------------------------------------------------------


def mark_handed(conn: Connection, handed: Iterable[tuple[str, int]]) -> None:
    """Write down each (key, handed): the epoch handing it over now, or ``REPEAT``. On the
    shared database it also renews this process's claim, and leaves alone a row another
    live process took meanwhile (this one's claim ran out while the database was away)."""
    shared = claims(conn)
    if shared is None:
        conn.executemany(
            "UPDATE outbox SET handed=? WHERE key=? AND status='pending'",
            [(h, k) for k, h in handed],
        )
        return
    hand_over(conn, _PG_MARK_HANDED, handed)


def mark_delivered(conn: Connection, keys: Iterable[str], now: float) -> None:
    fenced(
        conn,
        "UPDATE outbox SET status='delivered', updated=?, last_error='' "
        "WHERE key=? AND status='pending'",
        [(now, k) for k in keys],
        final=True,
    )


def mark_parts_done(conn: Connection, key: str, parts_done: int, now: float) -> None:
    """Remember that the first ``parts_done`` parts of a split message went out."""
    fenced(
        conn,
        "UPDATE outbox SET parts_done=?, updated=? WHERE key=? AND status='pending'",
        [(parts_done, now, key)],
        final=False,
    )


def mark_retry(
    conn: Connection, retries: Iterable[tuple[str, float]], *, error: str, now: float
) -> None:
    """Count a failed attempt for each (key, next attempt at): out of the service's hands
    (a possible repeat stays one)."""
    fenced(
        conn,
        # handed: REPEAT (-1) stays, an epoch becomes NONE.
        "UPDATE outbox SET attempts=attempts+1, next_attempt=?, last_error=?, updated=?, "
        "handed=CASE handed WHEN -1 THEN -1 ELSE 0 END WHERE key=? AND status='pending'",
        [(at, error, now, k) for k, at in retries],
        final=False,
    )


def mark_finished(
    conn: Connection, keys: Iterable[str], status: Finished, *, reason: str, now: float
) -> None:
    """Finish rows undelivered: given up on (``expired``), or muted since they were queued."""
    fenced(
        conn,
        "UPDATE outbox SET status=?, last_error=?, updated=? WHERE key=? AND status='pending'",
        [(status, reason, now, k) for k in keys],
        final=True,
    )


def prune(conn: Connection, older_than: float) -> int:
    """Forget finished rows last touched before ``older_than``."""
    cur = conn.execute("DELETE FROM outbox WHERE status!='pending' AND updated<?", (older_than,))
    return cur.rowcount
