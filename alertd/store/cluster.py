"""The cluster's tables on PostgreSQL: who is alive, who watches which account and whether it
has the stream, and the cluster's own view of each account's stream (alertd/cluster decides,
this module only reads and writes).

- ``cluster_replicas``: one row per replica name with ``lease_until`` (the database's clock),
  renewed every few seconds; a replica whose lease ran out is dead to the others.
- ``cluster_watch``: one row per (account, replica): whether that replica has the stream now,
  since when, the last time it had it healthy (``healthy_at``, the replica's UTC clock) and
  why it last lost it.
- ``cluster_streams``: one row per account: ``new`` (nothing to report: the cluster just
  started), ``seen`` or ``blind``, the window of the last blindness (``blind_since`` ..
  ``back_at``), its reason, and whether its down and back alerts went out.

Tables are created idempotently (``CREATE TABLE IF NOT EXISTS``) under the migrations'
advisory lock (``store.schema``), so replicas starting together do not race on the catalog.
psycopg 3's sync API, called from trio worker threads (``trio.to_thread.run_sync``) through a
small ``psycopg_pool`` pool; psycopg's errors leave this module as ``ClusterStoreError`` with
one line that names no password.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from typing import Any, Literal

import attrs
import psycopg
import psycopg_pool

from alertd.store.schema import MIGRATION_LOCK

log = logging.getLogger(__name__)

CONNECT_TIMEOUT = 5  # seconds for a new connection to the server
POOL_TIMEOUT = 5.0  # seconds to wait for a connection from the pool (a round waits this long)

SCHEMA = (
    """CREATE TABLE IF NOT EXISTS cluster_replicas (
    name text PRIMARY KEY,
    lease_until timestamptz NOT NULL,
    started timestamptz NOT NULL DEFAULT now()
    )""",
    """CREATE TABLE IF NOT EXISTS cluster_watch (
    account text NOT NULL,
    replica text NOT NULL,
    connected boolean NOT NULL,
    connected_since timestamptz,
    healthy_at timestamptz,
    reason text,
    PRIMARY KEY (account, replica)
    )""",
    """CREATE TABLE IF NOT EXISTS cluster_streams (
    account text PRIMARY KEY,
    state text NOT NULL,
    changed timestamptz NOT NULL,
    blind_since timestamptz,
    back_at timestamptz,
    reason text,
    down_sent boolean NOT NULL,
    back_sent boolean NOT NULL
    )""",
)

State = Literal["new", "seen", "blind"]


class ClusterStoreError(Exception):
    """The cluster's database could not be reached or answered with an error (one line)."""


@attrs.frozen(kw_only=True)
class Watch:
    """What one replica says about one account it watches (or stopped watching)."""

    account: str
    connected: bool
    connected_since: datetime | None = None
    healthy_at: datetime | None = None  # None: keep what the row says
    reason: str | None = None  # None: keep what the row says


@attrs.frozen(kw_only=True)
class WatchRow:
    """A ``cluster_watch`` row: ``replica``'s view of ``account``."""

    account: str
    replica: str
    connected: bool
    connected_since: datetime | None
    healthy_at: datetime | None
    reason: str | None


@attrs.frozen(kw_only=True)
class StreamRow:
    """A ``cluster_streams`` row: the cluster's view of one account's stream."""

    account: str
    state: State
    changed: datetime
    blind_since: datetime | None = None
    back_at: datetime | None = None
    reason: str | None = None
    down_sent: bool = True
    back_sent: bool = True


@attrs.frozen(kw_only=True)
class Ack:
    """A replica handed on the down (``back=False``) or back alerts of this window."""

    account: str
    blind_since: datetime
    back: bool


@attrs.frozen(kw_only=True)
class Decided:
    """An account's row after a round; ``changed``: by this round; ``age``: seconds since
    its state last changed, on the database's clock."""

    row: StreamRow
    changed: bool
    age: float


# (account, its row or None, every replica's watch of it, the database's now) -> the row
Decide = Callable[[str, StreamRow | None, Sequence[WatchRow], datetime], StreamRow]


def _utc(value: datetime | None) -> datetime | None:
    """In UTC: alert ids are built from isoformat(), which shows the offset."""
    return None if value is None else value.astimezone(UTC)


def _stream_row(r: Sequence[Any]) -> StreamRow:
    return StreamRow(
        account=r[0], state=r[1], changed=_utc(r[2]) or r[2], blind_since=_utc(r[3]),
        back_at=_utc(r[4]), reason=r[5], down_sent=r[6], back_sent=r[7],
    )  # fmt: skip


def _watch_row(r: Sequence[Any]) -> WatchRow:
    return WatchRow(
        account=r[0], replica=r[1], connected=r[2], connected_since=_utc(r[3]),
        healthy_at=_utc(r[4]), reason=r[5],
    )  # fmt: skip


def _one_line(e: BaseException) -> str:
    return " ".join(str(e).split()) or type(e).__name__


@attrs.define(eq=False)
class ClusterStore:
    """The cluster's tables on the database at ``dsn``; every method blocks (call it in a
    worker thread) and raises ``ClusterStoreError``."""

    dsn: str = attrs.field(repr=False)  # may hold a password
    _pool: psycopg_pool.ConnectionPool[psycopg.Connection[Any]] | None = None

    def open(self) -> None:
        """Connect and create the tables if they are missing (nothing if open already)."""
        if self._pool is not None:
            return
        try:  # once by hand first: the pool would retry a refused connection until its timeout
            psycopg.connect(self.dsn, connect_timeout=CONNECT_TIMEOUT).close()
        except psycopg.Error as e:
            raise ClusterStoreError(f"cannot connect to the database: {_one_line(e)}") from None
        pool = psycopg_pool.ConnectionPool(
            self.dsn, min_size=1, max_size=2, open=False, timeout=POOL_TIMEOUT,
            kwargs={"connect_timeout": CONNECT_TIMEOUT}, name="alertd-cluster",
        )  # fmt: skip
        try:
            pool.open(wait=True, timeout=POOL_TIMEOUT)
        except (psycopg.Error, psycopg_pool.PoolTimeout) as e:
            pool.close()
            raise ClusterStoreError(f"cannot connect to the database: {_one_line(e)}") from None
        self._pool = pool
        try:
            with self._transaction() as conn:
                conn.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK,))
                for statement in SCHEMA:
                    conn.execute(statement)
        except ClusterStoreError:
            self.close()
            raise

    @property
    def is_open(self) -> bool:
        return self._pool is not None

    def close(self) -> None:
        if self._pool is not None:
            self._pool.close()
            self._pool = None

    def _transaction(self) -> _Transaction:
        if self._pool is None:
            raise ClusterStoreError("the cluster store is not open")
        return _Transaction(self._pool)

    # -- membership ---------------------------------------------------------------------------

    def join(self, replica: str, lease: float) -> list[str]:
        """Register ``replica`` with a lease of ``lease`` seconds; its watches from a previous
        run are not connected any more. When no other replica is alive (the cluster starts),
        accounts the cluster has not seen yet get their grace time from now. Returns the live
        replicas' names, sorted."""
        with self._transaction() as conn:
            live = _renew(conn, replica, lease)
            conn.execute(
                "UPDATE cluster_watch SET connected = false, reason = 'replica restarted'"
                " WHERE replica = %s AND connected",
                (replica,),
            )
            if live == [replica]:
                conn.execute("UPDATE cluster_streams SET changed = now() WHERE state = 'new'")
            return live

    def renew(self, replica: str, lease: float) -> list[str]:
        """Renew ``replica``'s lease; the live replicas' names, sorted."""
        with self._transaction() as conn:
            return _renew(conn, replica, lease)

    def leave(self, replica: str, *, at: datetime) -> None:
        """``replica`` stops (gracefully) at ``at``: its lease and its watches end now. When it
        was the last one alive, accounts in view are ``new`` again (a deliberate stop of the
        whole cluster is no outage to report); blind ones stay blind, so the next start says
        when they came back."""
        with self._transaction() as conn:
            conn.execute("DELETE FROM cluster_replicas WHERE name = %s", (replica,))
            conn.execute(
                "UPDATE cluster_watch SET connected = false, reason = 'replica stopped',"
                " healthy_at = CASE WHEN connected THEN %s ELSE healthy_at END"
                " WHERE replica = %s",
                (at, replica),
            )
            others = conn.execute("SELECT 1 FROM cluster_replicas WHERE lease_until > now()")
            if others.fetchone() is None:
                conn.execute(
                    "UPDATE cluster_streams SET state = 'new', changed = now() WHERE state = 'seen'"
                )

    # -- the streams --------------------------------------------------------------------------

    def exchange(
        self,
        replica: str,
        watches: Iterable[Watch],
        acks: Iterable[Ack],
        report: Sequence[str],
        decide: Decide,
    ) -> list[Decided]:
        """One round: write ``replica``'s ``watches`` and ``acks``, then decide (``decide``)
        the stream of each account in ``report`` from every replica's watch of it, under a
        row lock; returns those accounts' rows as decided."""
        with self._transaction() as conn:
            conn.cursor().executemany(
                "INSERT INTO cluster_watch"
                " (account, replica, connected, connected_since, healthy_at, reason)"
                " VALUES (%s, %s, %s, %s, %s, %s)"
                " ON CONFLICT (account, replica) DO UPDATE SET"
                " connected = excluded.connected, connected_since = excluded.connected_since,"
                " healthy_at = COALESCE(excluded.healthy_at, cluster_watch.healthy_at),"
                " reason = COALESCE(excluded.reason, cluster_watch.reason)",
                [
                    (w.account, replica, w.connected, w.connected_since, w.healthy_at, w.reason)
                    for w in watches
                ],
            )
            for ack in acks:
                conn.execute(
                    "UPDATE cluster_streams SET back_sent = true"
                    " WHERE account = %s AND blind_since = %s"
                    if ack.back
                    else "UPDATE cluster_streams SET down_sent = true"
                    " WHERE account = %s AND blind_since = %s",
                    (ack.account, ack.blind_since),
                )
            if not report:
                return []
            return _decide_streams(conn, list(report), decide)


def _renew(conn: psycopg.Connection[Any], replica: str, lease: float) -> list[str]:
    conn.execute(
        "INSERT INTO cluster_replicas (name, lease_until)"
        " VALUES (%s, now() + make_interval(secs => %s))"
        " ON CONFLICT (name) DO UPDATE SET lease_until = excluded.lease_until",
        (replica, lease),
    )
    rows = conn.execute(
        "SELECT name FROM cluster_replicas WHERE lease_until > now() ORDER BY name"
    ).fetchall()
    return [r[0] for r in rows]


def _decide_streams(
    conn: psycopg.Connection[Any], report: list[str], decide: Decide
) -> list[Decided]:
    now = conn.execute("SELECT now()").fetchone()
    assert now is not None
    at = _utc(now[0]) or now[0]
    current = {
        r[0]: _stream_row(r)
        for r in conn.execute(
            "SELECT account, state, changed, blind_since, back_at, reason, down_sent, back_sent"
            " FROM cluster_streams WHERE account = ANY(%s) FOR UPDATE",
            (report,),
        )
    }
    watches: dict[str, list[WatchRow]] = {}
    for r in conn.execute(
        "SELECT account, replica, connected, connected_since, healthy_at, reason"
        " FROM cluster_watch WHERE account = ANY(%s)",
        (report,),
    ):
        watches.setdefault(r[0], []).append(_watch_row(r))
    decided = []
    for account in report:
        before = current.get(account)
        row = decide(account, before, watches.get(account, []), at)
        if row != before:
            conn.execute(
                "INSERT INTO cluster_streams (account, state, changed, blind_since, back_at,"
                " reason, down_sent, back_sent) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)"
                " ON CONFLICT (account) DO UPDATE SET state = excluded.state,"
                " changed = excluded.changed, blind_since = excluded.blind_since,"
                " back_at = excluded.back_at, reason = excluded.reason,"
                " down_sent = excluded.down_sent, back_sent = excluded.back_sent",
                (
                    row.account, row.state, row.changed, row.blind_since, row.back_at,
                    row.reason, row.down_sent, row.back_sent,
                ),
            )  # fmt: skip
        age = (at - row.changed).total_seconds()
        decided.append(Decided(row=row, changed=row != before, age=age))
    return decided


@attrs.define(eq=False)
class _Transaction:
    """A pooled connection in one transaction; psycopg's errors become ClusterStoreError."""

    pool: psycopg_pool.ConnectionPool[psycopg.Connection[Any]]
    _cm: Any = None

    def __enter__(self) -> psycopg.Connection[Any]:
        try:
            self._cm = self.pool.connection()
            conn: psycopg.Connection[Any] = self._cm.__enter__()
        except (psycopg.Error, psycopg_pool.PoolTimeout) as e:
            raise ClusterStoreError(f"database unavailable: {_one_line(e)}") from None
        return conn

    def __exit__(self, kind: Any, error: BaseException | None, tb: Any) -> None:
        try:
            self._cm.__exit__(kind, error, tb)  # commits, or rolls back on an error
        except psycopg.Error as e:
            raise ClusterStoreError(f"database error: {_one_line(e)}") from None
        if isinstance(error, psycopg.Error):
            raise ClusterStoreError(f"database error: {_one_line(error)}") from None
