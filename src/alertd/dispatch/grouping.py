"""Grouping: alerts of one rule and key that arrive close together go out as one message.

The first alert of a group waits ``group_wait`` for company; after a group was sent, further
alerts of it are collected and sent at most once per ``group_interval``. A group idle for a
whole interval is forgotten, so its next alert again waits only ``group_wait``. Times are
trio-clock seconds. Pure, no I/O (STYLE: keep the core pure).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, tzinfo

import attrs

from alertd.events import Alert

GroupKey = tuple[str, str]  # (rule, key)


@attrs.frozen(kw_only=True)
class Group:
    rule: str
    key: str
    alerts: tuple[Alert, ...]


@attrs.define
class _State:
    alerts: list[Alert] = attrs.field(factory=list)
    flush_at: float | None = None
    last_flush: float | None = None


@attrs.define
class Grouper:
    group_wait: float
    group_interval: float
    _groups: dict[GroupKey, _State] = attrs.field(factory=dict)

    def add(self, alert: Alert, now: float) -> None:
        state = self._groups.setdefault((alert.rule, alert.key), _State())
        if not state.alerts:
            if state.last_flush is None or now - state.last_flush >= self.group_interval:
                state.flush_at = now + self.group_wait
            else:
                state.flush_at = state.last_flush + self.group_interval
        state.alerts.append(alert)

    def next_deadline(self) -> float | None:
        times = [s.flush_at for s in self._groups.values() if s.alerts and s.flush_at is not None]
        return min(times, default=None)

    def pop_due(self, now: float) -> list[Group]:
        """Groups whose time has come, emptied; forgets groups idle for an interval."""
        due: list[Group] = []
        for (rule, key), state in list(self._groups.items()):
            if state.alerts and state.flush_at is not None and state.flush_at <= now:
                due.append(Group(rule=rule, key=key, alerts=tuple(state.alerts)))
                state.alerts = []
                state.flush_at = None
                state.last_flush = now
            elif not state.alerts and (
                state.last_flush is None or now - state.last_flush >= self.group_interval
            ):
                del self._groups[(rule, key)]
        return due

    def pop_all(self, now: float) -> list[Group]:
        """Every group with alerts, due or not (for shutdown)."""
        for state in self._groups.values():
            if state.alerts:
                state.flush_at = now
        return self.pop_due(now)

    @property
    def held(self) -> int:
        return sum(len(s.alerts) for s in self._groups.values())


def _clock(moment: datetime, tz: tzinfo) -> str:
    return moment.astimezone(tz).strftime("%H:%M:%S")


def summarize(
    rule: str, key: str, alerts: Sequence[Alert], tz: tzinfo, max_items: int = 50
) -> tuple[str, str]:
    """Title and body for one message about ``alerts``. A single alert is sent as the rules
    engine wrote it; several get a headline and one line (plus indented body) each."""
    if len(alerts) == 1:
        return alerts[0].title, alerts[0].body
    firing = sum(1 for a in alerts if a.status == "firing")
    resolved = len(alerts) - firing
    counts = ", ".join(
        part
        for part in (
            f"{firing} firing" if firing else "",
            f"{resolved} resolved" if resolved else "",
        )
        if part
    )
    title = f"{len(alerts)} alerts: {rule} ({key})"
    first, last = alerts[0].created, alerts[-1].created
    zone = first.astimezone(tz).tzname() or ""
    lines = [
        f"{len(alerts)} alerts for rule {rule!r}, key {key} ({counts}), "
        f"{_clock(first, tz)}-{_clock(last, tz)} {zone}".rstrip(),
        "",
    ]
    for alert in alerts[:max_items]:
        mark = " [resolved]" if alert.status == "resolved" else ""
        lines.append(f"\u2022 {_clock(alert.created, tz)}{mark} {alert.title}")
        if alert.body and alert.body != alert.title:
            lines.extend(f"  {line}" for line in alert.body.splitlines())
    if len(alerts) > max_items:
        lines.append(f"\u2026 and {len(alerts) - max_items} more")
    return title, "\n".join(lines)
