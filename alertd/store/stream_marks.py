"""When alertd last had each account's streams healthy, in the ``stream_marks`` table of the
state database: one row per account, so a start after alertd itself was down (stopped, or
killed) can report that window as a ``stream.gap``.

A row holds the last moment the account was connected (``healthy``, Unix seconds), whether
alertd then stopped gracefully (``stopped``: the moment is exact; else it crashed and the
moment is at most one write interval old), and the balances seen then (JSON, exact decimal
strings), which the first balances after the restart are compared with. Plain functions over
a connection, as the other table modules; the SQL is the same for SQLite and PostgreSQL.

A connected account's row is *live* (``healthy`` = ``LIVE``): its moment is the process's last
``alive`` one, in the one-row ``stream_alive`` table, so a running daemon writes one small row
a second however many accounts it watches, and an account's row only when it changes
(connected or not, its balances). ``load`` reads a live row as of the alive moment; with no
alive row a live row is no mark.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping, Sequence
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any, Protocol

import attrs

SCHEMA = """
CREATE TABLE IF NOT EXISTS stream_marks (
    account TEXT PRIMARY KEY,
    healthy REAL NOT NULL,
    stopped INTEGER NOT NULL,
    balances TEXT NOT NULL
)
"""
ALIVE_SCHEMA = """
CREATE TABLE IF NOT EXISTS stream_alive (
    id INTEGER PRIMARY KEY,
    alive REAL NOT NULL
)
"""
LIVE = -1.0  # ``healthy`` of a live row: connected as of the ``stream_alive`` moment


class Connection(Protocol):
    """What these functions need of a database connection (sqlite3's, or the store's)."""

    def execute(self, sql: str, parameters: Sequence[Any] = ..., /) -> Any: ...


@attrs.frozen(kw_only=True)
class StreamMark:
    """``account`` was last healthy at ``healthy`` (UTC), with ``balances``; ``stopped``:
    alertd stopped gracefully after it (else it was killed or crashed)."""

    account: str
    healthy: datetime
    stopped: bool = False
    balances: Mapping[str, Decimal] = attrs.field(factory=dict)
    # Connected: saved as live (``healthy`` is then ignored); read back as of the alive moment.
    live: bool = False


def create(conn: Connection) -> None:
    conn.execute(SCHEMA)
    conn.execute(ALIVE_SCHEMA)


def alive(conn: Connection, at: datetime) -> None:
    """The process is alive at ``at``: so are the live rows' accounts."""
    conn.execute(
        "INSERT INTO stream_alive (id, alive) VALUES (1, ?)"
        " ON CONFLICT (id) DO UPDATE SET alive = excluded.alive",
        (at.timestamp(),),
    )


def settle(conn: Connection) -> None:
    """Turn every live row into a fixed one at the alive moment (a new run takes the marks
    over: its own alive moments must not move the last run's)."""
    row = conn.execute("SELECT alive FROM stream_alive WHERE id = 1").fetchone()
    if row is None:
        conn.execute("DELETE FROM stream_marks WHERE healthy < 0")
    else:
        conn.execute("UPDATE stream_marks SET healthy = ? WHERE healthy < 0", (row[0],))


def load(conn: Connection) -> list[StreamMark]:
    """Every mark, by account; a row that cannot be read is no mark (no gap, not an error)."""
    found = conn.execute("SELECT alive FROM stream_alive WHERE id = 1").fetchone()
    rows = conn.execute(
        "SELECT account, healthy, stopped, balances FROM stream_marks ORDER BY account"
    ).fetchall()
    marks = []
    for account, healthy, stopped, balances in rows:
        try:
            live = float(healthy) < 0
            parsed = {str(c): Decimal(str(v)) for c, v in json.loads(balances).items()}
            if live and found is None:
                continue
            when = datetime.fromtimestamp(float(found[0] if live else healthy), UTC)
        except (ValueError, TypeError, AttributeError, InvalidOperation, OverflowError):
            continue
        marks.append(
            StreamMark(
                account=account, healthy=when, stopped=bool(stopped), balances=parsed, live=live
            )
        )
    return marks


def save(conn: Connection, marks: Sequence[StreamMark]) -> None:
    """Write ``marks`` (each replaces its account's row)."""
    for mark in marks:
        balances = json.dumps({c: str(v) for c, v in sorted(mark.balances.items())})
        conn.execute(
            "INSERT INTO stream_marks (account, healthy, stopped, balances) VALUES (?, ?, ?, ?)"
            " ON CONFLICT (account) DO UPDATE SET healthy = excluded.healthy,"
            " stopped = excluded.stopped, balances = excluded.balances",
            (
                mark.account,
                LIVE if mark.live else mark.healthy.timestamp(),
                int(mark.stopped),
                balances,
            ),
        )


def keep_only(conn: Connection, accounts: Collection[str]) -> None:
    """Forget the marks of every account not in ``accounts`` (removed, or disabled)."""
    for (account,) in conn.execute("SELECT account FROM stream_marks").fetchall():
        if account not in accounts:
            conn.execute("DELETE FROM stream_marks WHERE account = ?", (account,))


def mark_stopped(conn: Connection, stopped: bool) -> None:
    """Set every row's ``stopped``: true at a graceful stop, false once a new run took the
    marks over (a crash of this run is a crash, whatever ended the last one)."""
    conn.execute("UPDATE stream_marks SET stopped = ?", (int(stopped),))
