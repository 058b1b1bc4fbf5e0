"""The daemon's side of a shared database that goes away (store/outage.py, store/spool.py):
dispatch writes through ``for_dispatch`` (the spool while the database is away), and other
calls wait for it to come back while the daemon runs; once it stops, they must not, or a stop
would hang on a write made under a shield (the last stream marks, the last rule state save).
``watch_downtime`` runs the stream marks (``sources.downtime``) and, when intake is cancelled
(the stop's first step), tells the store to stop waiting."""

from __future__ import annotations

from collections.abc import Callable

import trio

from alertd.sources import downtime
from alertd.store.spooling import for_dispatch
from alertd.store.sql import Store

__all__ = ["for_dispatch", "watch_downtime"]


async def _stop_waiting_on_cancel(db: Store) -> None:
    try:
        await trio.sleep_forever()
    finally:
        stop = getattr(db, "stop_waiting", None)  # the shared database's; SQLite never waits
        if callable(stop):
            stop()


async def watch_downtime(
    db: Store,
    intake: object,
    graceful: Callable[[], bool],
    *,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """``downtime.watch`` until cancelled, the store told to stop waiting when it is."""
    async with trio.open_nursery() as nursery:
        nursery.start_soon(_stop_waiting_on_cancel, db)
        await nursery.start(downtime.watch, db, intake, graceful)
        task_status.started()
