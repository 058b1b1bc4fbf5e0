"""Dispatch's outbox on the shared database: its writes go to the outbox while the database
answers, and to the spool (store/spool.py) while it is away or the spool still holds
anything, so that alerts keep the order they came in."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Protocol, TypeVar, cast

from alertd.events import Alert
from alertd.store.alert_states import AlertState
from alertd.store.notifications import Notification, OutboxRow
from alertd.store.outbox import Outbox
from alertd.store.spool import (
    DatabaseUnreachable,
    OutageStatistics,
    Spool,
    without_waiting,
)
from alertd.store.writes import Record

T = TypeVar("T")


class Reachability(Protocol):
    """What ``SpoolingOutbox`` asks of the shared database (``PostgresDatabase``)."""

    @property
    def away(self) -> bool: ...

    def hand_drained_to(self, put: Callable[[Sequence[OutboxRow]], None]) -> None: ...

    def outage(self) -> OutageStatistics | None: ...


def for_dispatch(outbox: Outbox) -> Outbox | SpoolingOutbox:
    """What dispatch writes to: ``outbox`` itself, or on a shared database with a spool the
    ``SpoolingOutbox`` around it (the spool's drained rows handed to delivery)."""
    db = outbox.db
    spool = getattr(db, "spool", None)
    if not isinstance(spool, Spool):
        return outbox
    shared = cast(Reachability, db)
    shared.hand_drained_to(outbox.handoff.put)
    return SpoolingOutbox(outbox, spool, shared)


class SpoolingOutbox:
    """Dispatch's outbox on the shared database (see the module docstring): the same
    writes as ``Outbox``'s, that go to ``spool`` while ``database`` is away or the spool
    holds anything. A write that finds the database gone (its retries spent) goes there
    too. While the spool has its writes, a duplicate is one already in the spool."""

    def __init__(self, outbox: Outbox, spool: Spool, database: Reachability) -> None:
        self.outbox = outbox
        self.spool = spool
        self._database = database

    def _spooling(self) -> bool:
        return self._database.away or self.spool.pending

    async def _write(
        self, record: Record, whole: bool, direct: Callable[[], Awaitable[T]]
    ) -> tuple[T | None, list[bool] | None]:
        """(what ``direct`` returned, None) when the database took the write, else (None,
        what the spool's ``put`` said)."""
        while True:
            if not self._spooling():
                try:
                    with without_waiting():
                        return await direct(), None
                except DatabaseUnreachable:
                    pass  # gone while this write was tried: to the spool
            if self.spool.room_for(len(record.alerts)):
                return None, await self.spool.put(record, whole=whole)
            await self.spool.wait_for_room()

    def outage(self) -> OutageStatistics | None:
        """Whether the database is away, and the spool (for dispatch's statistics)."""
        return self._database.outage()

    async def held_alerts(self) -> list[Alert]:
        return await self.outbox.held_alerts()

    async def record_alerts(self, alerts: Sequence[Alert], now: float) -> list[Alert]:
        """As ``Outbox.record_alerts``: the alerts not seen before, each held."""
        record = Record(now=now, alerts=tuple((a, "held") for a in alerts))
        done, fresh = await self._write(
            record, False, lambda: self.outbox.record_alerts(alerts, now)
        )
        if fresh is None:
            return done or []
        return [a for a, new in zip(alerts, fresh, strict=True) if new]

    async def enqueue(
        self, notifications: Sequence[Notification], *, states: Mapping[str, AlertState]
    ) -> int:
        """As ``Outbox.enqueue`` (dispatch's use: the alerts' states given); spooled, how many
        rows it will queue at most."""
        record = Record(now=0.0, notifications=tuple(notifications), states=tuple(states.items()))
        done, _ = await self._write(
            record, False, lambda: self.outbox.enqueue(notifications, states=states)
        )
        return len(notifications) if done is None else done

    async def record_and_enqueue(self, record: Record) -> int | None:
        """As ``Outbox.record_and_enqueue``: None, with nothing written, when any alert was
        seen before."""
        done, fresh = await self._write(
            record, True, lambda: self.outbox.record_and_enqueue(record)
        )
        return done if fresh is None else len(record.notifications)
