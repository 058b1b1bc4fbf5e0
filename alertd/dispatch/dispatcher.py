"""The dispatch task: from the rules engine's alerts to rows in the outbox.

For each alert received: drop it if its id was seen before (the outbox remembers every id),
note what it says about streams being down (inhibition), and add it to its group. When a group
is due (grouping.py), its alerts are checked against silences and inhibitions *then* (so a
silence added during group wait counts), routed to channels, summarized into one message per
channel, held back past quiet hours where they apply, and written to the outbox, one row per
channel URL, in one transaction with marking the alerts sent.

Accepting an alert is a quick SQLite write in a worker thread and never waits on delivery, so
a slow channel cannot back up event intake.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from datetime import UTC, datetime, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import attrs
import trio

from alertd import clock
from alertd.config.model import Config
from alertd.dispatch.grouping import Group, Grouper, GroupKey
from alertd.dispatch.inhibit import Inhibitor
from alertd.dispatch.quiet import quiet_until
from alertd.dispatch.router import route
from alertd.dispatch.silences import Silences
from alertd.events import Alert, highest_severity
from alertd.messages.summary import summarize
from alertd.store.outbox import AlertState, Notification, Outbox, notification_key

log = logging.getLogger(__name__)

ACCEPT_BATCH = 500  # alerts recorded per transaction when a burst is already queued


def _zone(name: str) -> tzinfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return UTC


class Dispatcher:
    """See the module docstring. ``wall`` gives Unix seconds (silence expiry, quiet hours,
    outbox times); grouping and inhibition timers use the trio clock."""

    def __init__(
        self,
        config: Config,
        outbox: Outbox,
        silences: Silences,
        *,
        wall: clock.Wall = clock.wall,
    ) -> None:
        self._outbox = outbox
        self._silences = silences
        self._wall = wall
        self._wake = trio.Event()
        self._config = config
        self._grouper = Grouper(config.dispatch.group_wait, config.dispatch.group_interval)
        self._inhibitor = Inhibitor(config)

    def update_config(self, config: Config) -> None:
        """Use ``config`` from now on (reload); groups and inhibitions carry over."""
        self._config = config
        self._grouper.group_wait = config.dispatch.group_wait
        self._grouper.group_interval = config.dispatch.group_interval
        self._inhibitor.config = config

    async def run(
        self,
        receive: trio.MemoryReceiveChannel[Alert],
        *,
        task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Dispatch until ``receive`` is closed, then queue every held group at once (so a
        drain can deliver them) and return. On cancellation, alerts still waiting in a group
        stay ``held`` in the database and are picked up by the next start."""
        await self._silences.load(self._wall())
        now = trio.current_time()
        for alert in await self._outbox.held_alerts():
            self._inhibitor.observe(alert, now)
            self._grouper.add(alert, now)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._flush_loop)
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
                    await self.accept_many(batch)
            nursery.cancel_scope.cancel()
        with trio.CancelScope(shield=True):
            await self._flush(self._grouper.pop_all(trio.current_time()))

    async def accept(self, alert: Alert) -> None:
        """Take one alert (what ``run`` does for each one received)."""
        await self.accept_many([alert])

    async def accept_many(self, alerts: Sequence[Alert]) -> None:
        """Take alerts in order; ids seen before are logged and dropped."""
        now = trio.current_time()
        if all(self._grouper.immediate(a, now) for a in alerts) and await self._send_at_once(
            alerts
        ):
            return
        fresh = await self._outbox.record_alerts(alerts, self._wall())
        if len(fresh) < len(alerts):
            new = {a.id for a in fresh}
            for alert in alerts:
                if alert.id not in new:
                    log.info(
                        "dispatch.duplicate rule=%s key=%s id=%s", alert.rule, alert.key, alert.id
                    )
        now = trio.current_time()
        for alert in fresh:
            self._inhibitor.observe(alert, now)
            self._grouper.add(alert, now)
        if fresh:
            self._wake.set()

    async def _send_at_once(self, alerts: Sequence[Alert]) -> bool:
        """With no group wait, alerts that open a group go out at once: recording them and
        queuing their notifications is then one transaction (one round trip to SQLite, not
        two), with what ``add`` then ``pop_due`` then ``_flush`` would have written. False,
        with nothing changed, when an id was seen before: the caller takes the ordinary way,
        which drops the duplicate."""
        wall = self._wall()
        await self._silences.refresh(wall)
        now = trio.current_time()
        # The inhibitor is restored if the batch is refused (a duplicate must not count).
        saved = self._inhibitor.snapshot()
        for alert in alerts:
            self._inhibitor.observe(alert, now)
        groups: dict[GroupKey, list[Alert]] = {}
        for alert in alerts:
            groups.setdefault((alert.rule, alert.key), []).append(alert)
        plans = [
            self._plan(Group(rule=rule, key=key, alerts=tuple(members)), wall, now)
            for (rule, key), members in groups.items()
        ]
        states: dict[str, AlertState] = {}
        notifications: list[Notification] = []
        for plan in plans:
            states.update(plan.states)
            notifications += plan.notifications
        added = await self._outbox.record_and_enqueue(alerts, wall, states, notifications)
        if added is None:
            self._inhibitor.restore(saved)
            return False
        self._grouper.mark_flushed(groups, now)
        for plan in plans:
            plan.log()
        return True

    async def _flush_loop(self) -> None:
        while True:
            self._wake = trio.Event()
            due = self._grouper.pop_due(trio.current_time())
            if due:
                await self._flush(due)
                continue
            deadline = self._grouper.next_deadline()
            with trio.move_on_at(math.inf if deadline is None else deadline):
                await self._wake.wait()

    async def _flush(self, groups: Sequence[Group]) -> None:
        """Queue ``groups``: one transaction for all of them."""
        if not groups:
            return
        wall = self._wall()
        await self._silences.refresh(wall)
        now = trio.current_time()
        plans = [self._plan(group, wall, now) for group in groups]
        states: dict[str, AlertState] = {}
        notifications: list[Notification] = []
        for plan in plans:
            states.update(plan.states)
            notifications += plan.notifications
        if states:
            await self._outbox.enqueue(notifications, states=states)
        for plan in plans:
            plan.log()

    def _plan(self, group: Group, wall: float, now: float) -> _Plan:
        """What flushing ``group`` writes: each alert's state and the notifications. Pure
        but for the inhibitor's expiry bookkeeping and the log lines, which wait for the
        write (``_Plan.log``)."""
        config = self._config
        plan = _Plan(group=group)
        by_channel: dict[str, list[Alert]] = {}
        for alert in group.alerts:
            silence = self._silences.match(alert, wall)
            if silence is not None:
                plan.lines.append(
                    (
                        logging.INFO,
                        "dispatch.silenced rule=%s key=%s id=%s silence=%s",
                        (alert.rule, alert.key, alert.id, silence.id),
                    )
                )
                plan.states[alert.id] = "silenced"
                continue
            source = self._inhibitor.inhibited_by(alert, now)
            if source is not None:
                plan.lines.append(
                    (
                        logging.INFO,
                        "dispatch.inhibited rule=%s key=%s id=%s by=%s",
                        (alert.rule, alert.key, alert.id, source),
                    )
                )
                plan.states[alert.id] = "inhibited"
                continue
            routed = route(alert, config)
            if routed.unknown:
                plan.lines.append(
                    (
                        logging.ERROR,
                        "dispatch.unknown_channel rule=%s channels=%s: not in [channels]",
                        (alert.rule, ",".join(routed.unknown)),
                    )
                )
            if not routed.channels:
                plan.lines.append(
                    (
                        logging.ERROR,
                        "dispatch.unrouted rule=%s key=%s id=%s: the rule names no known "
                        "channel and [dispatch] default_channel is not set",
                        (alert.rule, alert.key, alert.id),
                    )
                )
                plan.states[alert.id] = "unrouted"
                continue
            for channel in routed.channels:
                by_channel.setdefault(channel, []).append(alert)
        if not by_channel:
            return plan

        zone = _zone(config.daemon.timezone)
        moment = datetime.fromtimestamp(wall, UTC)
        for channel, alerts in by_channel.items():
            settings = config.channels[channel]
            title, body = summarize(
                group.rule, group.key, alerts, zone, config.dispatch.group_max_items
            )
            windows = [*settings.quiet_hours, *config.dispatch.quiet_hours]
            until = quiet_until(windows, group.rule, moment, config.daemon.timezone)
            if until is not None:
                plan.lines.append(
                    (
                        logging.INFO,
                        "dispatch.quiet rule=%s key=%s channel=%s until=%s",
                        (group.rule, group.key, channel, until.isoformat()),
                    )
                )
            ids = tuple(a.id for a in alerts)
            for i in ids:
                plan.states[i] = "sent"
            plan.notifications += [
                Notification(
                    key=notification_key(channel, index, ids),
                    channel=channel,
                    url_index=index,
                    title=title,
                    body=body,
                    alert_ids=ids,
                    created=wall,
                    not_before=None if until is None else until.timestamp(),
                    severity=highest_severity(a.severity for a in alerts),
                )
                for index in range(len(settings.urls))
            ]
        plan.channels = list(by_channel)
        return plan


@attrs.define
class _Plan:
    """What flushing one group writes, and what it logs once written."""

    group: Group
    states: dict[str, AlertState] = attrs.field(factory=dict)
    notifications: list[Notification] = attrs.field(factory=list)
    channels: list[str] = attrs.field(factory=list)
    lines: list[tuple[int, str, tuple[object, ...]]] = attrs.field(factory=list)

    def log(self) -> None:
        for level, message, args in self.lines:
            log.log(level, message, *args)
        if self.channels:
            log.info(
                "dispatch.queued rule=%s key=%s alerts=%d channels=%s rows=%d",
                self.group.rule,
                self.group.key,
                sum(1 for s in self.states.values() if s == "sent"),
                ",".join(self.channels),
                len(self.notifications),
            )
