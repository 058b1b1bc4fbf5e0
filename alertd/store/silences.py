"""The ``silences`` table of the state database: "mute rule R (a glob) for alerts whose labels
match, until T". ``alertd silence add|list|remove`` writes it on a connection of its own; the
daemon reads it (``alertd.dispatch.silences``, which also decides what a silence matches).

On PostgreSQL (``[daemon] database``) the table is every replica's: a silence added through
one mutes what any of them sends.

Synchronous functions over one ``Connection``: the command line calls them directly, the
daemon through ``Database.run``. Times are Unix seconds.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Mapping

import attrs

from alertd.store.sql import Connection, is_shared

SCHEMA = """
CREATE TABLE IF NOT EXISTS silences (
    id TEXT PRIMARY KEY,
    rule TEXT NOT NULL,
    matchers TEXT NOT NULL,
    starts REAL NOT NULL,
    ends REAL NOT NULL,
    comment TEXT NOT NULL DEFAULT '',
    created_by TEXT NOT NULL DEFAULT ''
);
"""


@attrs.frozen(kw_only=True)
class Silence:
    """``rule`` is a glob over rule names; ``matchers`` label -> value (a glob too)."""

    id: str
    rule: str
    matchers: Mapping[str, str] = attrs.field(factory=dict)
    starts: float
    ends: float
    comment: str = ""
    created_by: str = ""

    def active(self, now: float) -> bool:
        return self.starts <= now < self.ends


def ensure_schema(conn: Connection) -> None:
    if not is_shared(conn):  # PostgreSQL: schema.py migrates
        conn.executescript(SCHEMA)


def add_silence(
    conn: Connection,
    *,
    rule: str,
    matchers: Mapping[str, str],
    starts: float,
    ends: float,
    comment: str = "",
    created_by: str = "",
) -> Silence:
    ensure_schema(conn)
    silence = Silence(
        id=secrets.token_hex(4),
        rule=rule,
        matchers=dict(matchers),
        starts=starts,
        ends=ends,
        comment=comment,
        created_by=created_by,
    )
    conn.execute(
        "INSERT INTO silences (id, rule, matchers, starts, ends, comment, created_by) "
        "VALUES (?, ?, ?, ?, ?, ?, ?)",
        (
            silence.id,
            silence.rule,
            json.dumps(dict(silence.matchers), sort_keys=True),
            silence.starts,
            silence.ends,
            silence.comment,
            silence.created_by,
        ),
    )
    return silence


def list_silences(conn: Connection, *, now: float, include_expired: bool = False) -> list[Silence]:
    """Silences not yet ended (or all), soonest ending first."""
    ensure_schema(conn)
    rows = conn.execute(
        "SELECT id, rule, matchers, starts, ends, comment, created_by FROM silences "
        "WHERE ends > ? OR ? ORDER BY ends, id",
        (now, include_expired),
    ).fetchall()
    return [
        Silence(
            id=r[0],
            rule=r[1],
            matchers=json.loads(r[2]),
            starts=r[3],
            ends=r[4],
            comment=r[5],
            created_by=r[6],
        )
        for r in rows
    ]


def remove_silence(conn: Connection, silence_id: str) -> bool:
    ensure_schema(conn)
    cur = conn.execute("DELETE FROM silences WHERE id=?", (silence_id,))
    return cur.rowcount == 1


def data_version(conn: Connection) -> int:
    """SQLite's ``data_version``: it changes when *another* connection commits, so a reader
    can tell cheaply whether a re-read is worth it. PostgreSQL has none: there it is a
    number that changes when a silence is added (a newer row version) or removed (fewer
    rows), one query on a small table."""
    if is_shared(conn):
        count, newest = conn.execute(
            "SELECT count(*), coalesce(max(xmin::text::bigint), 0) FROM silences"
        ).fetchone()
        return int(newest) * 1_000_003 + int(count)
    return int(conn.execute("PRAGMA data_version").fetchone()[0])
