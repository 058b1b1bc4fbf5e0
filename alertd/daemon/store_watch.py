"""The daemon's side of a shared database that goes away (store/outage.py, store/spool.py):
dispatch writes through ``for_dispatch`` (the spool while the database is away), and other
calls wait for it to come back while the daemon runs; once it stops, they must not, or a stop
would hang on a write made under a shield (the last stream marks, the last rule state save).
``stop_waiting_when_cancelled`` runs beside the stream marks (``sources.downtime``) and,
when intake is cancelled (the stop's first step), tells the store to stop waiting. A stop
while the database is away does not drain (``drain_unless_away``): nothing can be sent,
every send is written down first; what is pending stays in the database, what is spooled in
the spool, for the next start, and the delivery workers, waiting for the database, are
cancelled with the tail."""

from __future__ import annotations

import logging

import trio

from alertd.notify.delivery import Delivery
from alertd.store.spool import DatabaseUnreachable, outage_of
from alertd.store.spooling import for_dispatch
from alertd.store.sql import Store

__all__ = ["drain_unless_away", "for_dispatch", "stop_waiting_when_cancelled"]

log = logging.getLogger(__name__)


async def stop_waiting_when_cancelled(db: Store) -> None:
    """Run until cancelled (with intake, the stop's first step), then tell the shared
    database's calls to stop waiting for it; SQLite never waits."""
    try:
        await trio.sleep_forever()
    finally:
        stop = getattr(db, "stop_waiting", None)
        if callable(stop):
            stop()


async def drain_unless_away(delivery: Delivery, db: Store, deadline: float) -> int:
    """``delivery.drain(deadline)``, unless the shared database is away (or goes away during
    it): then one WARNING line, and how many alerts the spool keeps is returned instead."""
    outage = outage_of(db)
    if outage is None:
        return await delivery.drain(deadline)
    if outage.away_since is None:
        try:
            return await delivery.drain(deadline)
        except DatabaseUnreachable:
            outage = outage_of(db) or outage
    log.warning(
        "daemon.drain_skipped the database is away: pending notifications stay in it and "
        "%d alerts in the spool, for the next start",
        outage.spool.alerts,
    )
    return outage.spool.alerts
