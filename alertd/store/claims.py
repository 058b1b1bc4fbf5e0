"""This process's claims on outbox rows, on the database replicas share (PostgreSQL only; see
``notifications``): renewed while it runs, released when it stops, the URLs whose rows
another process left and the alerts it held in its groups, for this one to take, and the
fence on what it writes of the rows.

A lease is not a fence: a process paused past its lease (SIGSTOP, a long GC, a stalled VM)
goes on where it stopped, as if it still held its rows. So every claim has a token, the
row's ``claim`` column, which every process taking the row from another (or after its
lease ran out) increases; this process keeps the token of each row it holds (``Holdings``),
and every outcome it writes (delivered, a retry, expired, muted, parts done, handed over) is
conditional on the token being unchanged (``fenced``): once another process has claimed the
row, a late write of this one is refused and changes nothing (counted, logged). And before a
send, a row whose claim may have run out by this process's own monotonic clock, with a
margin, is confirmed with the database first (``reconfirm``): the send does not start when
another process has claimed the row since.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable, Sequence
from typing import Any

from alertd.events import Alert
from alertd.store.alert_states import alert_from_json
from alertd.store.sql import Claims, Connection, claims

log = logging.getLogger(__name__)

# Of a lease, what must be left of a claim, by this process's clock, for a send to start
# without asking the database: renewals come every third of a lease, so a live process's
# claims always have two thirds left; less means renewals stopped (a pause, an outage).
MARGIN_SHARE = 1 / 3


class Holdings:
    """The rows one claimant holds, as this process's monotonic clock (``time.monotonic``)
    sees them: each row's claim token and until when the claim surely lasts (from the moment
    before the statement that took or renewed it). Used from the store's worker threads and
    the event loop: a lock guards it."""

    def __init__(self, lease: float) -> None:
        self.lease = lease
        self.fenced = 0  # writes refused: another process had claimed the row since
        self._rows: dict[str, tuple[int, float]] = {}
        self._lock = threading.Lock()

    @property
    def margin(self) -> float:
        return self.lease * MARGIN_SHARE

    def claimed(self, tokens: Iterable[tuple[str, int]], at: float) -> None:
        with self._lock:
            for key, token in tokens:
                self._rows[key] = (token, at + self.lease)

    def renewed(self, at: float) -> None:
        """A renewal that began at ``at`` went through: it extends every claim that surely
        lasted past it (one that may have run out before may be another's by now)."""
        with self._lock:
            until = at + self.lease
            for key, (token, lasts) in list(self._rows.items()):
                if lasts > at + self.margin:
                    self._rows[key] = (token, until)

    def token(self, key: str) -> int | None:
        with self._lock:
            held = self._rows.get(key)
        return None if held is None else held[0]

    def forget(self, keys: Iterable[str]) -> None:
        """Rows finished, or taken by another process."""
        with self._lock:
            for key in keys:
                self._rows.pop(key, None)

    def lapsing(self, keys: Iterable[str], now: float) -> list[str]:
        """Of ``keys``, those not surely held for a margin more (or not known as held)."""
        with self._lock:
            rows = self._rows
            return [k for k in keys if k not in rows or rows[k][1] - now < self.margin]


_registry: dict[str, Holdings] = {}
_registry_lock = threading.Lock()


def holdings(shared: Claims) -> Holdings:
    """The holdings of ``shared.claimant`` (one per store handle: its claimant is its own)."""
    with _registry_lock:
        found = _registry.get(shared.claimant)
        if found is None:
            found = _registry[shared.claimant] = Holdings(shared.lease)
        return found


def _claims(conn: Connection) -> Claims:
    shared = claims(conn)
    assert shared is not None, "claims exist on the shared database only"
    return shared


def renew_claims(conn: Connection) -> int:
    """Extend this process's claims on its pending rows and held alerts by a lease; how many
    rows it holds."""
    shared = _claims(conn)
    at = time.monotonic()
    conn.execute(
        "UPDATE dispatch_alerts SET held_until=extract(epoch from clock_timestamp())+? "
        "WHERE held_by=? AND state='held'",
        (shared.lease, shared.claimant),
    )
    cur = conn.execute(
        "UPDATE outbox SET lease_until=extract(epoch from clock_timestamp())+? "
        "WHERE claimed_by=? AND status='pending'",
        (shared.lease, shared.claimant),
    )
    holdings(shared).renewed(at)
    return cur.rowcount


def release_claims(conn: Connection) -> int:
    """Give up this process's claims (it stops): other processes may take the rows (and any
    alert it still held) now."""
    conn.execute(
        "UPDATE dispatch_alerts SET held_by='', held_until=0 WHERE held_by=? AND state='held'",
        (_claims(conn).claimant,),
    )
    cur = conn.execute(
        "UPDATE outbox SET claimed_by='', lease_until=0 WHERE claimed_by=? AND status='pending'",
        (_claims(conn).claimant,),
    )
    return cur.rowcount


def orphans(conn: Connection) -> set[tuple[str, int]]:
    """The URLs with pending rows that another process claimed and no longer holds (its
    lease ran out: it died, or released them when it stopped)."""
    rows = conn.execute(
        "SELECT DISTINCT channel, url_index FROM outbox WHERE status='pending' "
        "AND claimed_by<>? AND lease_until<extract(epoch from clock_timestamp())",
        (_claims(conn).claimant,),
    )
    return {(r[0], r[1]) for r in rows}


def adopt_held(conn: Connection) -> list[Alert]:
    """Alerts other processes held in their groups and hold no more (their lease ran out:
    they died; or they released them), held by this one from now on, oldest first."""
    shared = _claims(conn)
    rows = conn.execute(
        "UPDATE dispatch_alerts SET held_by=?, held_until=extract(epoch from clock_timestamp())+? "
        "WHERE state='held' AND held_by<>? AND (held_by='' "
        "OR held_until<extract(epoch from clock_timestamp())) RETURNING received, alert",
        (shared.claimant, shared.lease, shared.claimant),
    ).fetchall()
    rows.sort(key=lambda r: float(r[0]))
    return [alert_from_json(r[1]) for r in rows]


# -- the fence ---------------------------------------------------------------------------------


def fenced(conn: Connection, sql: str, params: Sequence[Sequence[Any]], *, final: bool) -> int:
    """Run ``sql``, an UPDATE of one outbox row ending ``WHERE key=? AND status='pending'``
    (the key its last parameter), once for each of ``params``; on the shared database only
    where this process still holds the row's claim (its token unchanged). A write refused is
    counted and logged, and the row forgotten (another process holds it); ``final`` outcomes
    forget the rows written too. How many rows were written."""
    shared = claims(conn)
    if shared is None:
        return conn.executemany(sql, params).rowcount
    held = holdings(shared)
    written, refused, done = 0, [], []
    for p in params:
        key = p[-1]
        token = held.token(key)
        cur = conn.execute(sql + " AND claim=?", (*p, -1 if token is None else token))
        if cur.rowcount == 1:
            written += 1
            done.append(key)
        else:
            refused.append(key)
    if refused:
        _refused(conn, held, refused)
    if final:
        held.forget(done)
    return written


def hand_over(conn: Connection, sql: str, handed: Iterable[tuple[str, int]]) -> None:
    """``notifications.mark_handed`` on the shared database: ``sql`` (its UPDATE) for each
    (key, handed) whose claim this process still holds, which it renews."""
    shared = _claims(conn)
    held, at = holdings(shared), time.monotonic()
    for k, h in handed:
        token = held.token(k)
        values = (
            h,
            shared.claimant,
            shared.lease,
            k,
            shared.claimant,
            -1 if token is None else token,
        )
        if token is not None and conn.execute(sql, values).rowcount == 1:
            held.claimed([(k, token)], at)
        else:
            held.forget([k])


def _refused(conn: Connection, held: Holdings, keys: Sequence[str]) -> None:
    """Writes refused: rows another process claimed since (or that are finished)."""
    still = conn.execute(
        "SELECT key FROM outbox WHERE key = ANY(?) AND status='pending'", (list(keys),)
    ).fetchall()
    taken = {r[0] for r in still}
    held.forget(keys)
    if taken:
        held.fenced += len(taken)
        log.warning(
            "store.fenced rows=%d (another replica claimed them since this one's lease ran "
            "out: its outcome is not written)",
            len(taken),
        )


def reconfirm(conn: Connection, keys: Sequence[str]) -> list[str]:
    """Renew this process's claims on ``keys`` where it still holds them (token unchanged),
    from now; the keys it does not hold any more (another process claimed them since)."""
    shared = _claims(conn)
    held = holdings(shared)
    at, lost, kept = time.monotonic(), [], []
    for key in keys:
        token = held.token(key)
        cur = conn.execute(
            "UPDATE outbox SET claimed_by=?, lease_until=extract(epoch from clock_timestamp())+? "
            "WHERE key=? AND status='pending' AND claim=?",
            (shared.claimant, shared.lease, key, -1 if token is None else token),
        )
        if cur.rowcount == 1 and token is not None:
            kept.append((key, token))
        else:
            lost.append(key)
    held.claimed(kept, at)
    if lost:
        held.forget(lost)
        held.fenced += len(lost)
        log.warning(
            "store.fenced rows=%d (another replica claimed them while this one's lease ran "
            "out: not sent here)",
            len(lost),
        )
    return lost
