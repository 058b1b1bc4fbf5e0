"""Silences: "mute rule R (glob) for alerts whose labels match, until T", kept in the state
database so ``alertd silence add`` (another process) reaches a running daemon.

The daemon keeps the silences in memory and re-reads them when SQLite's ``data_version`` says
another connection committed, checked at most every ``REFRESH_INTERVAL`` seconds: a silence
added from the command line takes effect within about a second, without a restart, and
without a query per alert. Times are Unix seconds.
"""

from __future__ import annotations

import json
import secrets
import sqlite3
from collections.abc import Mapping

import attrs
import trio

from alertd.dispatch.labels import alert_labels, glob_match
from alertd.events import Alert
from alertd.store.database import Database

REFRESH_INTERVAL = 1.0  # seconds between data_version checks

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

    def matches(self, alert: Alert) -> bool:
        if not glob_match(self.rule, alert.rule):
            return False
        labels = alert_labels(alert)
        return all(
            key in labels and glob_match(value, labels[key]) for key, value in self.matchers.items()
        )


# -- synchronous store functions (the CLI calls these on its own connection) ------------------


def ensure_schema(conn: sqlite3.Connection) -> None:
    conn.executescript(SCHEMA)


def add_silence(
    conn: sqlite3.Connection,
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


def list_silences(
    conn: sqlite3.Connection, *, now: float, include_expired: bool = False
) -> list[Silence]:
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


def remove_silence(conn: sqlite3.Connection, silence_id: str) -> bool:
    ensure_schema(conn)
    cur = conn.execute("DELETE FROM silences WHERE id=?", (silence_id,))
    return cur.rowcount == 1


def _data_version(conn: sqlite3.Connection) -> int:
    return int(conn.execute("PRAGMA data_version").fetchone()[0])


# -- the daemon's view --------------------------------------------------------------------------


class Silences:
    """The silences in ``db``, cached; ``match`` is a pure in-memory check."""

    def __init__(self, db: Database) -> None:
        self._db = db
        db.run_sync(ensure_schema)
        self._silences: list[Silence] = []
        self._version: int | None = None
        self._checked = -float("inf")

    @property
    def current(self) -> list[Silence]:
        return list(self._silences)

    async def load(self, now: float = float("-inf")) -> None:
        """Read every silence that has not ended by ``now``."""

        def go(conn: sqlite3.Connection) -> tuple[int, list[Silence]]:
            return _data_version(conn), list_silences(conn, now=now)

        self._version, self._silences = await self._db.run(go)
        self._checked = trio.current_time()

    async def refresh(self, now: float = float("-inf")) -> None:
        """Re-read if another process changed the database; cheap to call often."""
        if trio.current_time() - self._checked < REFRESH_INTERVAL and self._version is not None:
            return
        self._checked = trio.current_time()
        version = await self._db.run(_data_version)
        if version != self._version:
            await self.load(now)

    async def add(
        self, *, rule: str, matchers: Mapping[str, str], starts: float, ends: float, comment: str
    ) -> Silence:
        """Add a silence from inside the daemon (tests, a future API)."""
        silence = await self._db.run(
            lambda conn: add_silence(
                conn, rule=rule, matchers=matchers, starts=starts, ends=ends, comment=comment
            )
        )
        self._silences.append(silence)
        return silence

    def match(self, alert: Alert, now: float) -> Silence | None:
        """The silence that mutes ``alert`` at ``now``, if any."""
        for silence in self._silences:
            if silence.active(now) and silence.matches(alert):
                return silence
        return None
