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

import trio

from alertd.config.model import Config
from alertd.dispatch.grouping import Group, Grouper, summarize
from alertd.dispatch.inhibit import Inhibitor
from alertd.dispatch.quiet import quiet_until
from alertd.dispatch.router import route
from alertd.dispatch.silences import Silences
from alertd.events import Alert
from alertd.notify import clock
from alertd.notify.notifier import highest_severity
from alertd.notify.outbox import Notification, Outbox, notification_key

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
        if not groups:
            return
        wall = self._wall()
        await self._silences.refresh(wall)
        for group in groups:
            await self._flush_group(group, wall)

    async def _flush_group(self, group: Group, wall: float) -> None:
        config = self._config
        now = trio.current_time()
        silenced: list[str] = []
        inhibited: list[str] = []
        unrouted: list[str] = []
        by_channel: dict[str, list[Alert]] = {}
        for alert in group.alerts:
            silence = self._silences.match(alert, wall)
            if silence is not None:
                log.info(
                    "dispatch.silenced rule=%s key=%s id=%s silence=%s",
                    alert.rule,
                    alert.key,
                    alert.id,
                    silence.id,
                )
                silenced.append(alert.id)
                continue
            source = self._inhibitor.inhibited_by(alert, now)
            if source is not None:
                log.info(
                    "dispatch.inhibited rule=%s key=%s id=%s by=%s",
                    alert.rule,
                    alert.key,
                    alert.id,
                    source,
                )
                inhibited.append(alert.id)
                continue
            routed = route(alert, config)
            if routed.unknown:
                log.error(
                    "dispatch.unknown_channel rule=%s channels=%s: not in [channels]",
                    alert.rule,
                    ",".join(routed.unknown),
                )
            if not routed.channels:
                log.error(
                    "dispatch.unrouted rule=%s key=%s id=%s: the rule names no known channel "
                    "and [dispatch] default_channel is not set",
                    alert.rule,
                    alert.key,
                    alert.id,
                )
                unrouted.append(alert.id)
                continue
            for channel in routed.channels:
                by_channel.setdefault(channel, []).append(alert)
        if silenced:
            await self._outbox.set_alert_state(silenced, "silenced")
        if inhibited:
            await self._outbox.set_alert_state(inhibited, "inhibited")
        if unrouted:
            await self._outbox.set_alert_state(unrouted, "unrouted")
        if not by_channel:
            return

        zone = _zone(config.daemon.timezone)
        moment = datetime.fromtimestamp(wall, UTC)
        notifications: list[Notification] = []
        sent: set[str] = set()
        for channel, alerts in by_channel.items():
            settings = config.channels[channel]
            title, body = summarize(
                group.rule, group.key, alerts, zone, config.dispatch.group_max_items
            )
            windows = [*settings.quiet_hours, *config.dispatch.quiet_hours]
            until = quiet_until(windows, group.rule, moment, config.daemon.timezone)
            if until is not None:
                log.info(
                    "dispatch.quiet rule=%s key=%s channel=%s until=%s",
                    group.rule,
                    group.key,
                    channel,
                    until.isoformat(),
                )
            ids = tuple(a.id for a in alerts)
            sent.update(ids)
            notifications += [
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
        added = await self._outbox.enqueue(notifications, sent_alert_ids=sent)
        log.info(
            "dispatch.queued rule=%s key=%s alerts=%d channels=%s rows=%d",
            group.rule,
            group.key,
            len(sent),
            ",".join(by_channel),
            added,
        )
