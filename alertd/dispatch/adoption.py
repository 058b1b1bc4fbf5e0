"""Replicas (alertd.cluster): a dead replica's grouped alerts, adopted by a live one while it
runs, not only at its next start. A replica's dispatcher holds the alerts waiting in its
groups (``group_wait``, ``group_interval``) in the shared ``dispatch_alerts`` table, held by
it for a lease it renews (store/claims); every third of a lease each live replica looks for
alerts whose holder's lease ran out (it died) and takes them into its own groups, as a start
does (``Grouper.restore``: they go out together, ``group_wait`` from then). An alert is held
until the transaction that queues its notification marks it sent, so an adopted alert was
not sent by the dead replica, and one replica takes it (the update that takes it re-checks
the holder under the row's lock).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence

import trio

from alertd.events import Alert
from alertd.store.outbox import Outbox
from alertd.store.spooling import SpoolingOutbox

log = logging.getLogger(__name__)

SHARE = 1 / 3  # of the lease: how often a replica looks for a dead one's held alerts


async def adopt_orphans(
    writes: Outbox | SpoolingOutbox, adopt: Callable[[Sequence[Alert]], Awaitable[None]]
) -> None:
    """Every third of the lease until cancelled, hand the alerts another replica held and
    holds no more to ``adopt`` (the dispatcher's). Nothing on SQLite (no other replica)."""
    outbox = writes.outbox if isinstance(writes, SpoolingOutbox) else writes
    if outbox.claims is None:
        return
    interval = outbox.claims.lease * SHARE
    while True:
        await trio.sleep(interval)
        try:
            alerts = await outbox.adopt_held()
        except Exception as e:  # the database away for a while: the next round tries again
            log.warning("dispatch.adopt_failed %s", e)
            continue
        if alerts:
            groups = len({(a.rule, a.key) for a in alerts})
            log.info(
                "dispatch.adopted alerts=%d groups=%d (another replica's, its lease ran out)",
                len(alerts), groups,
            )  # fmt: skip
            await adopt(alerts)
