"""When alertd last had each account's streams healthy, in the ``stream_marks`` table of the
state database: one row per account, so a start after alertd itself was down (stopped, or
killed) can report that window as a ``stream.gap``.

A row holds the last moment the account was connected (``healthy``, Unix seconds), whether
alertd then stopped gracefully (``stopped``: the moment is exact; else it crashed and the
moment is at most one write interval old), and the balances seen then (JSON, exact decimal
strings), which the first balances after the restart are compared with. Plain functions over
a connection, as the other table modules; the SQL is the same for SQLite and PostgreSQL.
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


def create(conn: Connection) -> None:
    conn.execute(SCHEMA)


def load(conn: Connection) -> list[StreamMark]:
    """Every mark, by account; a row that cannot be read is no mark (no gap, not an error)."""
    rows = conn.execute(
        "SELECT account, healthy, stopped, balances FROM stream_marks ORDER BY account"
    )
    marks = []
    for account, healthy, stopped, balances in rows:
        try:
            parsed = {str(c): Decimal(str(v)) for c, v in json.loads(balances).items()}
            when = datetime.fromtimestamp(float(healthy), UTC)
        except (ValueError, TypeError, AttributeError, InvalidOperation, OverflowError):
            continue
        marks.append(
            StreamMark(account=account, healthy=when, stopped=bool(stopped), balances=parsed)
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
            (mark.account, mark.healthy.timestamp(), int(mark.stopped), balances),
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
