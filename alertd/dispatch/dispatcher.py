"""The dispatch task: from the rules engine's alerts to rows in the outbox.

Alerts are taken one after another, in the order they arrive, whatever batches the channel
hands over: each one is noted for inhibition (``Muter.observe``) and goes to its group
(grouping.py), which decides from arrival times alone when it goes out. An alert due the
moment it arrives (``group_wait = 0``, its group idle) is decided at once; the others when
their group is due, so a silence added during group wait counts. Deciding a group: each
alert is checked against the silences and inhibitions *then* (muting.py), routed to
channels, the alerts of each channel summarized into one message, held back past quiet
hours where they apply, and written to the outbox, one row per channel URL, in one
transaction with the alerts' new states. An id seen before is dropped.

Accepting alerts is a quick SQLite write in a worker thread and never waits on delivery, so
a slow channel cannot back up event intake. Alerts sent at once are recorded and queued in
one transaction (one round trip to SQLite, not two). On a shared database the writes go to a
local spool while it is away (store/spooling.py), so dispatch goes on.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence

import attrs
import trio

from alertd import clock
from alertd.config.model import Config
from alertd.dispatch.adoption import adopt_orphans
from alertd.dispatch.grouping import Group, Grouper, GroupingStatistics, GroupKey, group_key
from alertd.dispatch.muting import Muter
from alertd.dispatch.plan import Plan, Take, plan_group
from alertd.engine.probe import ProbeAlert
from alertd.events import Alert
from alertd.store.outbox import Outbox
from alertd.store.spool import OutageStatistics
from alertd.store.spooling import SpoolingOutbox

log = logging.getLogger(__name__)

ACCEPT_BATCH = 500  # alerts recorded per transaction when a burst is already queued


@attrs.frozen(kw_only=True)
class DispatchStatistics:
    """What the dispatcher has done since it was built, and what it holds now."""

    alerts_received: int  # alerts taken in, duplicates included
    duplicates: int  # dropped: an alert of that id was accepted before
    grouping: GroupingStatistics  # groups waiting now, and the alerts in them
    silenced: int  # alerts a silence kept from every channel
    inhibited: int  # alerts an inhibition kept from every channel
    unrouted: int  # alerts with no channel to go to (logged as errors)
    rows_queued: int  # outbox rows written (one per message and channel URL)
    rows_held_for_quiet_hours: int  # of those, rows that wait for quiet hours to end
    # On a shared database: whether it is away, and the spool (store/spool.py); else None.
    outage: OutageStatistics | None = None


@attrs.define
class _Counts:
    received: int = 0
    duplicates: int = 0
    silenced: int = 0
    inhibited: int = 0
    unrouted: int = 0
    rows: int = 0
    quiet: int = 0


class Dispatcher:
    """See the module docstring. ``muter`` is the one shared with delivery; the dispatcher
    feeds it every alert. ``wall`` gives Unix seconds (silence expiry, quiet hours, outbox
    times); grouping and inhibition timers use the trio clock."""

    def __init__(
        self,
        config: Config,
        outbox: Outbox | SpoolingOutbox,
        muter: Muter,
        *,
        wall: clock.Wall = clock.wall,
    ) -> None:
        self._outbox = outbox
        self._muter = muter
        self._wall = wall
        self._wake = trio.Event()
        self._config = config
        self._grouper = Grouper(config.dispatch.group_wait, config.dispatch.group_interval)
        # The grouper changes only under this lock, and what one step decided is written
        # before the next step decides: a group cannot go out between an alert's arrival
        # and its joining the group (that was the timing grouping must not depend on).
        self._lock = trio.Lock()
        self._counts = _Counts()

    def update_config(self, config: Config) -> None:
        """Use ``config`` from now on (reload), the muter's inhibitions too; groups and
        what is down carry over."""
        self._config = config
        self._grouper.group_wait = config.dispatch.group_wait
        self._grouper.group_interval = config.dispatch.group_interval
        self._muter.update_config(config)

    def statistics(self) -> DispatchStatistics:
        c = self._counts
        return DispatchStatistics(
            alerts_received=c.received,
            duplicates=c.duplicates,
            grouping=self._grouper.statistics(),
            silenced=c.silenced,
            inhibited=c.inhibited,
            unrouted=c.unrouted,
            rows_queued=c.rows,
            rows_held_for_quiet_hours=c.quiet,
            outage=self._outbox.outage() if isinstance(self._outbox, SpoolingOutbox) else None,
        )

    async def run(
        self,
        receive: trio.MemoryReceiveChannel[Alert],
        *,
        task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Dispatch until ``receive`` is closed, then queue every held group at once (so a
        drain can deliver them) and return. On cancellation, alerts still waiting in a group
        stay ``held`` in the database and are picked up by the next start."""
        await self._muter.refresh(self._wall())
        self._restore(await self._outbox.held_alerts())
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._flush_loop)
            nursery.start_soon(adopt_orphans, self._outbox, self.adopt)  # a dead replica's
            task_status.started()
            async with receive:
                async for alert in receive:
                    # Take whatever else is already waiting too: one transaction for a burst.
                    batch = [alert]
                    while len(batch) < ACCEPT_BATCH:
                        try:
                            batch.append(receive.receive_nowait())
                        except (trio.WouldBlock, trio.EndOfChannel):
                            break
                    probes = [a for a in batch if type(a) is ProbeAlert]
                    if probes:  # the heartbeat's, one an interval: never recorded (engine/probe)
                        batch = [a for a in batch if type(a) is not ProbeAlert]
                    if batch:
                        await self.accept_many(batch)
                    for probe in probes:
                        async with self._lock:  # what holds dispatch up holds the probe
                            probe.probe.passed_dispatch()
            nursery.cancel_scope.cancel()
        with trio.CancelScope(shield=True):
            await self._flush(self._grouper.pop_all(trio.current_time()))

    async def adopt(self, alerts: Sequence[Alert]) -> None:
        """Alerts another replica held in its groups when it died (dispatch/adoption)."""
        async with self._lock:
            self._restore(alerts)
            self._wake.set()

    def _restore(self, alerts: Sequence[Alert]) -> None:
        """Alerts held in groups by a stopped or dead dispatcher, grouped here from now."""
        now = trio.current_time()
        for alert in alerts:
            self._muter.observe(alert, now)
        self._grouper.restore(alerts, now)

    async def accept(self, alert: Alert) -> None:
        """Take one alert (what ``run`` does for each one received)."""
        await self.accept_many([alert])

    async def accept_many(self, alerts: Sequence[Alert]) -> None:
        """Take alerts in order, as if one by one; ids seen before are logged and dropped."""
        self._counts.received += len(alerts)
        if self._lock.locked():
            await self._lock.acquire()
        else:  # the common case, without the trip through the scheduler acquire() makes
            self._lock.acquire_nowait()
        try:
            wall = self._wall()
            await self._muter.refresh(wall)
            now = trio.current_time()
            saved = self._muter.snapshot()
            take = self._take(alerts, wall, now)
            if take.plans:
                added = await self._outbox.record_and_enqueue(take.record(alerts, wall))
                fresh = list(alerts) if added is not None else None
            else:
                fresh = await self._outbox.record_alerts(alerts, wall)
            if fresh is None or len(fresh) < len(alerts):
                # Some were seen before: what they implied is undone, and the others are
                # taken again without them.
                self._muter.restore(saved)
                if fresh is None:
                    fresh = await self._outbox.record_alerts(alerts, wall)
                self._log_duplicates(alerts, fresh)
                take = self._take(fresh, wall, now)
                if take.plans:
                    await self._outbox.enqueue(take.notifications(), states=take.states())
            for alert, sent in take.order:
                if sent:
                    self._grouper.mark_sent(alert, now)
                else:
                    self._grouper.add(alert, now)
            for plan in take.plans:
                self._done(plan)
            if take.held:
                self._wake.set()
        finally:
            self._lock.release()

    def _take(self, alerts: Sequence[Alert], wall: float, now: float) -> Take:
        """What taking ``alerts`` (in order) at ``now`` decides, grouper unchanged: those due
        at once are planned (each alone: its group was idle), the others will wait."""
        take = Take()
        opened: set[GroupKey] = set()
        for alert in alerts:
            self._muter.observe(alert, now)
            key = group_key(alert)
            sent = key not in opened and self._grouper.due_at(alert, now) <= now
            opened.add(key)
            take.order.append((alert, sent))
            if sent:
                group = Group(rule=alert.rule, key=alert.key, alerts=(alert,), due=now)
                take.plans.append(plan_group(group, self._config, self._muter, wall, now))
            else:
                take.held = True
        return take

    def _log_duplicates(self, alerts: Sequence[Alert], fresh: Sequence[Alert]) -> None:
        new = {a.id for a in fresh}
        for alert in alerts:
            if alert.id not in new:
                self._counts.duplicates += 1
                log.info(
                    "dispatch.duplicate rule=%s account=%s key=%s",
                    *(alert.rule, alert.account or "-", alert.key),
                )

    async def _flush_loop(self) -> None:
        while True:
            self._wake = trio.Event()
            async with self._lock:
                due = self._grouper.pop_due(trio.current_time())
                if due:
                    # Shielded: groups taken from the grouper must reach the outbox, or a
                    # stop would leave them to the next start instead of the drain.
                    with trio.CancelScope(shield=True):
                        await self._flush(due)
            if due:
                continue
            deadline = self._grouper.next_deadline()
            with trio.move_on_at(math.inf if deadline is None else deadline):
                await self._wake.wait()

    async def _flush(self, groups: Sequence[Group]) -> None:
        """Queue ``groups``: one transaction for all of them."""
        if not groups:
            return
        wall = self._wall()
        await self._muter.refresh(wall)
        now = trio.current_time()
        take = Take(
            plans=[plan_group(group, self._config, self._muter, wall, now) for group in groups]
        )
        states = take.states()
        if states:
            await self._outbox.enqueue(take.notifications(), states=states)
        for plan in take.plans:
            self._done(plan)

    def _done(self, plan: Plan) -> None:
        """``plan`` is written: count and log it."""
        counts = self._counts
        for state in plan.states.values():
            if state == "silenced":
                counts.silenced += 1
            elif state == "inhibited":
                counts.inhibited += 1
            elif state == "unrouted":
                counts.unrouted += 1
        counts.rows += len(plan.notifications)
        counts.quiet += sum(1 for n in plan.notifications if n.not_before is not None)
        plan.log()
