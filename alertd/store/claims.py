"""This process's claims on outbox rows, on the database replicas share (PostgreSQL only; see
``notifications``): renewed while it runs, released when it stops, and the URLs whose rows
another process left, for this one to take."""

from __future__ import annotations

from alertd.store.sql import Claims, Connection, claims


def _claims(conn: Connection) -> Claims:
    shared = claims(conn)
    assert shared is not None, "claims exist on the shared database only"
    return shared


def renew_claims(conn: Connection) -> int:
    """Extend this process's claims on its pending rows and held alerts by a lease; how many
    rows it holds."""
    shared = _claims(conn)
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
