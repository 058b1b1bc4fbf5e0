"""The durable outbox, as dispatch and delivery use it: two tables, ``alert_states`` (every
alert dispatch accepted) and ``notifications`` (the ``outbox`` table: one row per message and
URL), changed together in one transaction where a step touches both (queuing a notification
marks its alerts sent), and the ``Handoff`` that gives delivery the rows just committed.

Delivery marks a row delivered as soon as the service accepted it, and writes down what it
hands to a service before the send (``mark_handed``), so after a crash a row is sent again
at most once more, for the message that was in flight (at-least-once), marked as a possible
repeat, and a delivered row is never sent again. A row queued as the next that a URL's
worker sends (``Handoff.claim``) is written handed over in its own commit: a fresh alert's
way out costs no write before its send.

Every call runs in the store's worker thread (``Database``, or ``PostgresDatabase`` shared by
replicas); every change is one ``write``.
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Iterable, Mapping, Sequence

import attrs
import trio

from alertd.events import Alert
from alertd.store import alert_states
from alertd.store import notifications as outbox_table  # the SQL table is named outbox
from alertd.store.alert_states import AlertState, alert_from_json, alert_to_json
from alertd.store.claims import adopt_held, holdings, orphans, reconfirm
from alertd.store.handoff import Handoff, HandoffStatistics
from alertd.store.notifications import (
    Notification,
    OutboxRow,
    Status,
    notification_key,
)
from alertd.store.sql import Connection, Store, claims
from alertd.store.writes import Record

log = logging.getLogger(__name__)

__all__ = [
    "AlertState",
    "Notification",
    "Outbox",
    "OutboxRow",
    "OutboxStatistics",
    "Status",
    "alert_from_json",
    "alert_to_json",
    "notification_key",
]


@attrs.frozen(kw_only=True)
class OutboxStatistics:
    pending: int  # rows waiting for delivery, all channels
    pending_by_channel: dict[str, int]
    oldest_pending: float | None  # Unix seconds the oldest pending row has been due since
    queued: int  # rows this process added
    handoff: HandoffStatistics


ORIGINS_KEPT = 20_000  # alerts whose (rule, account) delivery's log lines find in memory


class _Duplicate(Exception):
    """An alert id was seen before: roll the whole write back."""


class Outbox:
    """The outbox tables in ``db``; created on construction (a quick synchronous call, made
    once at start-up). Rows committed are handed to ``handoff`` (default: one of its own, of
    the default capacity)."""

    def __init__(self, db: Store, *, handoff: Handoff | None = None) -> None:
        self.db = db
        self.handoff = handoff if handoff is not None else Handoff()
        # Marks this process's hand-offs: one found from another epoch was cut off.
        self.epoch = secrets.randbits(62) + 1
        self._queued = 0
        # Each alert this process recorded, by id: (rule, account), for delivery's log lines
        # without a read of the alerts table after every send (which held the database
        # thread, doubling the latency benchmark's p99). Bounded; a miss reads the table.
        self._origins: dict[str, tuple[str, str]] = {}

        def create(conn: Connection) -> None:
            alert_states.create(conn)
            outbox_table.create(conn)

        db.run_sync(create)
        self.claims = db.run_sync(claims)  # None: SQLite, this process's alone

    async def upkeep(
        self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """The store's upkeep (``Store.upkeep``) until cancelled; on the shared database also,
        every third of a lease, the workers of URLs whose rows another replica left (its lease
        ran out) are woken to take them: a replica that dies while sending is replaced
        within about a lease and a third."""
        async with trio.open_nursery() as nursery:
            await nursery.start(self.db.upkeep)
            if self.claims is not None:
                nursery.start_soon(self._adopt, self.claims.lease / 3)
            task_status.started()

    async def _adopt(self, interval: float) -> None:
        while True:
            await trio.sleep(interval)
            try:
                left = await self.db.run(orphans)
            except Exception as e:  # the database away for a while: the next round tries again
                log.warning("store.orphans_failed %s", e)
                continue
            if left:
                log.info("store.orphans targets=%d (another replica's rows)", len(left))
                self.handoff.wake(left)

    def _claims(self, notifications: Sequence[Notification]) -> dict[str, int]:
        """The first notification for each URL whose worker sends it next, at once, to be
        written handed over (this epoch) in the commit that queues it."""
        claimed: dict[str, int] = {}
        seen: set[tuple[str, int]] = set()
        for n in notifications:
            target = (n.channel, n.url_index)
            if target in seen:
                continue
            seen.add(target)
            due_now = n.not_before is None or n.not_before <= n.created
            if due_now and self.handoff.claim(target):
                claimed[n.key] = self.epoch
        return claimed

    def _committed(self, added: Sequence[OutboxRow]) -> int:
        """Rows are durable now: count them and hand them to delivery."""
        self._queued += len(added)
        self.handoff.put(added)
        return len(added)

    async def statistics(self) -> OutboxStatistics:
        """A snapshot. What is pending is read from the table (one query on indexes): it is
        the truth across restarts, and only the table knows it."""
        pending = await self.db.run(outbox_table.pending)
        return OutboxStatistics(
            pending=sum(pending.by_channel.values()),
            pending_by_channel=pending.by_channel,
            oldest_pending=pending.oldest_due,
            queued=self._queued,
            handoff=self.handoff.statistics(),
        )

    # -- alerts (dispatch) --------------------------------------------------------------------

    async def record_alert(self, alert: Alert, now: float, state: AlertState = "held") -> bool:
        """Remember ``alert``; False when its id was seen before (a duplicate)."""
        [new] = await self.db.write(lambda conn: alert_states.insert(conn, [(alert, state)], now))
        self._remember([alert])
        return new

    def _remember(self, alerts: Iterable[Alert]) -> None:
        for alert in alerts:
            self._origins[alert.id] = (alert.rule, alert.account or "-")
        while len(self._origins) > ORIGINS_KEPT:
            del self._origins[next(iter(self._origins))]  # the oldest

    async def origins(self, alert_ids: Iterable[str]) -> dict[str, tuple[str, str]]:
        """(rule, account) of each of these alerts that is known (ids never stored, or
        pruned, are left out): from memory for those this process recorded."""
        ids = list(alert_ids)
        out = {i: self._origins[i] for i in ids if i in self._origins}
        missing = [i for i in ids if i not in out]
        if missing:
            stored = await self.alerts(missing)
            out.update({i: (a.rule, a.account or "-") for i, a in stored.items()})
        return out

    async def record_alerts(self, alerts: Sequence[Alert], now: float) -> list[Alert]:
        """Remember a batch of alerts in one transaction; returns the ones not seen before."""
        held: list[tuple[Alert, AlertState]] = [(a, "held") for a in alerts]
        new = await self.db.write(lambda conn: alert_states.insert(conn, held, now))
        self._remember(alerts)
        return [a for a, fresh in zip(alerts, new, strict=True) if fresh]

    async def set_alert_state(self, alert_ids: Iterable[str], state: AlertState) -> None:
        states = [(i, state) for i in alert_ids]
        await self.db.write(lambda conn: alert_states.set_states(conn, states))

    async def alerts(self, alert_ids: Iterable[str]) -> dict[str, Alert]:
        """The stored alerts with these ids (ids not stored, e.g. pruned, are left out)."""
        ids = list(alert_ids)
        return await self.db.run(lambda conn: alert_states.load(conn, ids))

    async def held_alerts(self) -> list[Alert]:
        """Alerts accepted but not yet queued (waiting in a group when the process stopped)."""
        return await self.db.run(alert_states.held)

    async def adopt_held(self) -> list[Alert]:
        """On the shared database, alerts another replica held in its groups and holds no
        more (it died), held by this process from now on; none on SQLite."""
        return [] if self.claims is None else await self.db.write(adopt_held)

    # -- queuing (dispatch, and delivery's fallback reports) ----------------------------------

    async def enqueue(
        self,
        notifications: Sequence[Notification],
        *,
        sent_alert_ids: Iterable[str] = (),
        states: Mapping[str, AlertState] | None = None,
    ) -> int:
        """Queue ``notifications`` (a key already queued is ignored) and mark the alerts they
        carry as sent (and other alerts as ``states`` says), in one transaction. Returns how
        many rows were new."""
        updates: list[tuple[str, AlertState]] = [(i, "sent") for i in sent_alert_ids]
        updates += list((states or {}).items())

        claimed = self._claims(notifications)

        def go(conn: Connection) -> list[OutboxRow]:
            added = outbox_table.insert(conn, notifications, handed=claimed)
            alert_states.set_states(conn, updates)
            return added

        return self._committed(await self.db.write(go))

    async def record_and_enqueue(self, record: Record) -> int | None:
        """Remember ``record``'s alerts in their final states and queue its notifications,
        in one transaction: for alerts that go out at once (no group wait), one round trip
        instead of two. None, with nothing written, when any alert id was seen before (the
        caller then takes the ordinary way, which drops duplicates)."""
        claimed = self._claims(record.notifications)

        def go(conn: Connection) -> list[OutboxRow]:
            if not all(alert_states.insert(conn, record.alerts, record.now)):
                raise _Duplicate
            return outbox_table.insert(conn, record.notifications, handed=claimed)

        try:
            added = await self.db.write(go)
        except _Duplicate:
            return None
        self._remember(a for a, _ in record.alerts)
        return self._committed(added)

    # -- rows (delivery) ----------------------------------------------------------------------

    async def pending_count(self) -> int:
        """How many (notification, URL) rows wait for delivery."""
        return await self.db.run(outbox_table.pending_count)

    async def pending_targets(self) -> set[tuple[str, int]]:
        """The (channel, URL index) pairs that have pending rows."""
        return await self.db.run(outbox_table.pending_targets)

    async def due(self, channel: str, url_index: int, now: float, limit: int) -> list[OutboxRow]:
        """Pending rows for one URL whose time has come, oldest first."""
        return await self.db.run(
            lambda conn: outbox_table.due(conn, channel, url_index, now, limit)
        )

    async def next_due(self, channel: str, url_index: int) -> float | None:
        """When the next pending row for one URL is due (Unix seconds), None if none is."""
        return await self.db.run(lambda conn: outbox_table.next_due(conn, channel, url_index))

    async def rows(self, *, status: Status | None = None) -> list[OutboxRow]:
        """Every row (optionally of one status), oldest first: for tests and inspection."""
        return await self.db.run(lambda conn: outbox_table.rows(conn, status))

    async def still_held(self, rows: Sequence[OutboxRow]) -> bool:
        """Whether ``rows`` are still this process's to send (always, on SQLite). On the
        shared database a claim that may have run out by this process's own clock (it was
        paused, or could not renew) is confirmed with the database first: False, and the
        send does not start, when another replica has claimed one since (store/claims)."""
        if self.claims is None:
            return True
        lapsing = holdings(self.claims).lapsing([r.key for r in rows], time.monotonic())
        if not lapsing:
            return True
        lost = await self.db.write(lambda conn: reconfirm(conn, lapsing))
        return not lost

    def possible_repeat(self, row: OutboxRow) -> bool:
        """Whether the service may have ``row`` already: a send of it was cut off (by a
        crash or a stop of another process, or a cancelled send here)."""
        return row.handed not in (outbox_table.NONE, self.epoch)

    def _handing(self, rows: Iterable[OutboxRow]) -> list[tuple[str, int]]:
        """What ``mark_handed`` writes for ``rows``: only what changes."""
        changes = []
        for row in rows:
            handed = outbox_table.REPEAT if self.possible_repeat(row) else self.epoch
            if row.handed != handed:
                changes.append((row.key, handed))
        return changes

    async def mark_handed(self, rows: Iterable[OutboxRow]) -> None:
        """Write down, before sending them, that ``rows`` are in a service's hands."""
        changes = self._handing(rows)
        if changes:
            await self.db.write(lambda conn: outbox_table.mark_handed(conn, changes))

    async def mark_cut(self, rows: Iterable[OutboxRow]) -> None:
        """Rows whose send was cancelled in the service's hands: possible repeats now."""
        changes = [(r.key, outbox_table.REPEAT) for r in rows]
        await self.db.write(lambda conn: outbox_table.mark_handed(conn, changes))

    async def mark_delivered(
        self, keys: Iterable[str], now: float, *, handing: Iterable[OutboxRow] = ()
    ) -> None:
        """Finish rows the service accepted; with ``handing``, also ``mark_handed`` those
        (the next to send), in the same write."""
        done = list(keys)
        changes = self._handing(handing)

        def go(conn: Connection) -> None:
            outbox_table.mark_delivered(conn, done, now)
            outbox_table.mark_handed(conn, changes)

        await self.db.write(go)

    async def mark_parts_done(self, key: str, parts_done: int, now: float) -> None:
        """Remember that the first ``parts_done`` parts of a split message went out."""
        await self.db.write(lambda conn: outbox_table.mark_parts_done(conn, key, parts_done, now))

    async def mark_retry(
        self, retries: Iterable[tuple[str, float]], *, error: str, now: float
    ) -> None:
        """Count a failed attempt for each (key, when to try next)."""
        later = list(retries)
        await self.db.write(lambda conn: outbox_table.mark_retry(conn, later, error=error, now=now))

    async def mark_expired(self, keys: Iterable[str], *, error: str, now: float) -> None:
        done = list(keys)
        await self.db.write(
            lambda conn: outbox_table.mark_finished(conn, done, "expired", reason=error, now=now)
        )

    async def mark_muted(
        self,
        muted: Sequence[tuple[str, outbox_table.Finished, str]],
        states: Iterable[tuple[str, AlertState]],
        now: float,
    ) -> None:
        """Finish rows whose every alert was muted after they were queued, each (key, how,
        why), and set their alerts' states, in one transaction."""
        updates = list(states)

        def go(conn: Connection) -> None:
            for key, how, why in muted:
                outbox_table.mark_finished(conn, [key], how, reason=why, now=now)
            alert_states.set_states(conn, updates)

        await self.db.write(go)

    async def prune(self, older_than: float) -> int:
        """Forget finished rows and alerts last touched before ``older_than``."""

        def go(conn: Connection) -> int:
            return outbox_table.prune(conn, older_than) + alert_states.prune(conn, older_than)

        return await self.db.write(go)
