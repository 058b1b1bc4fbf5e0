"""When a ``summary`` rule's digest is due: local times of day in the configured timezone,
repeating every ``every`` (checked by ``config.validate.summary_schedule_problems``: it
divides a day, or is whole days, from one hour to a week)."""

from __future__ import annotations

from datetime import datetime, time, timedelta, tzinfo

from alertd.config.validate import DAY


def _epoch(moment: datetime) -> float:
    return moment.timestamp()


def next_due(after: float, *, every: float, at: time, tz: tzinfo, last: float | None) -> float:
    """The next scheduled moment (Unix seconds) after ``after``: the local times ``at`` +
    k x ``every`` of each day when ``every`` divides a day, else ``at`` every ``every``
    days counted from ``last`` (the summary sent before, if any). Local wall time: a daily
    08:00 stays 08:00 across a change of daylight saving time."""
    step = round(every)
    local = datetime.fromtimestamp(after, tz)
    if step >= DAY:
        if last is not None:
            day = datetime.fromtimestamp(last, tz).date() + timedelta(days=step // DAY)
            due = datetime.combine(day, at, tzinfo=tz)
            if _epoch(due) > after:
                return _epoch(due)
        for extra in (0, 1, 2):
            due = datetime.combine(local.date() + timedelta(days=extra), at, tzinfo=tz)
            if _epoch(due) > after:
                return _epoch(due)
    offset = (at.hour * 3600 + at.minute * 60) % step
    for extra in (-1, 0, 1, 2):
        midnight = datetime.combine(local.date() + timedelta(days=extra), time(), tzinfo=tz)
        for k in range(DAY // step):
            # aware + timedelta is wall-clock arithmetic: the slots keep their local times
            due = midnight + timedelta(seconds=offset + k * step)
            if _epoch(due) > after:
                return _epoch(due)
    raise AssertionError("a schedule with no time in three days")  # every <= 7d is checked
