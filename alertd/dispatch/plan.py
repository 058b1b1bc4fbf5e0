"""Planning what sending a group writes (dispatch's decision, pure but for the inhibitor's
expiry bookkeeping): each alert checked against the muting *then*, routed to channels, the
alerts of each channel summarized into one message, held back past quiet hours where they
apply, one row per channel URL; and what a batch of alerts taken at once decided (``Take``).
The dispatcher writes the plan, then counts and logs it."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import UTC, datetime

import attrs

from alertd.config.model import Config
from alertd.dispatch.grouping import Group
from alertd.dispatch.muting import Muting
from alertd.dispatch.quiet import quiet_until
from alertd.dispatch.router import route, rows_for
from alertd.events import Alert
from alertd.messages.formats import zone
from alertd.messages.level import alerts_level
from alertd.messages.summary import summarize
from alertd.store.outbox import AlertState, Notification
from alertd.store.writes import Record

log = logging.getLogger("alertd.dispatch.dispatcher")  # the dispatcher's log lines, as before


def plan_group(group: Group, config: Config, muting: Muting, wall: float, now: float) -> Plan:
    """What sending ``group`` writes: each alert's state and the notifications. Pure
    but for the inhibitor's expiry bookkeeping; the log lines and counts wait for the
    write (``Dispatcher._done``)."""
    plan = Plan(group=group)
    by_channel: dict[str, list[Alert]] = {}
    for alert in group.alerts:
        muted = muting.muted(alert, wall=wall, now=now)
        if muted is not None:
            word = "silence" if muted.how == "silenced" else "by"
            plan.lines.append(
                (
                    logging.INFO,
                    f"dispatch.{muted.how} rule=%s account=%s key=%s {word}=%s",
                    (alert.rule, alert.account or "-", alert.key, muted.source),
                )
            )
            plan.states[alert.id] = muted.how
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

    tz = zone(config.daemon.timezone)
    moment = datetime.fromtimestamp(wall, UTC)
    for channel, alerts in by_channel.items():
        settings = config.channels[channel]
        title, body = summarize(group.rule, group.key, alerts, tz, config.dispatch.group_max_items)
        windows = [*settings.quiet_hours, *config.dispatch.quiet_hours]
        level = alerts_level(alerts)
        until = quiet_until(windows, group.rule, moment, config.daemon.timezone, level=level)
        if until is not None:  # said in the queued line: one line per alert
            plan.quiet.append(f"{channel}@{until.isoformat()}")
        ids = tuple(a.id for a in alerts)
        for i in ids:
            plan.states[i] = "sent"
        plan.notifications += rows_for(
            channel,
            settings,
            title=title,
            body=body,
            alert_ids=ids,
            created=wall,
            not_before=None if until is None else until.timestamp(),
            severity=level,  # the severity, or "resolved"
        )
    plan.channels = list(by_channel)
    return plan


@attrs.define
class Plan:
    """What sending one group writes, and what it logs once written."""

    group: Group
    states: dict[str, AlertState] = attrs.field(factory=dict)
    notifications: list[Notification] = attrs.field(factory=list)
    channels: list[str] = attrs.field(factory=list)
    lines: list[tuple[int, str, tuple[object, ...]]] = attrs.field(factory=list)
    quiet: list[str] = attrs.field(factory=list)  # channel@until of those held back

    def log(self) -> None:
        for level, message, args in self.lines:
            log.log(level, message, *args)
        if self.channels:
            sent = [a for a in self.group.alerts if self.states.get(a.id) == "sent"]
            accounts = sorted({a.account or "-" for a in sent})
            log.info(
                "dispatch.queued rule=%s account=%s key=%s alerts=%d channels=%s rows=%d%s",
                *(self.group.rule, ",".join(accounts), self.group.key),
                len(sent),
                ",".join(self.channels),
                len(self.notifications),
                f" quiet_until={','.join(self.quiet)}" if self.quiet else "",
            )


@attrs.define
class Take:
    """What taking a batch of alerts decided: each alert in order with whether it goes out
    at once, the plans for those that do, and whether any waits in a group."""

    order: list[tuple[Alert, bool]] = attrs.field(factory=list)
    plans: list[Plan] = attrs.field(factory=list)
    held: bool = False

    def states(self) -> dict[str, AlertState]:
        """Every alert's state: as planned, else ``held`` (waiting in its group)."""
        out: dict[str, AlertState] = {alert.id: "held" for alert, _ in self.order}
        for plan in self.plans:
            out.update(plan.states)
        return out

    def record(self, alerts: Sequence[Alert], now: float) -> Record:
        """The one write that records ``alerts`` (every one in its state) and queues the
        notifications, for ``Outbox.record_and_enqueue``."""
        states = self.states()
        return Record(
            now=now,
            alerts=tuple((a, states[a.id]) for a in alerts),
            notifications=tuple(self.notifications()),
        )

    def notifications(self) -> list[Notification]:
        return [n for plan in self.plans for n in plan.notifications]
