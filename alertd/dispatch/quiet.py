"""Quiet hours: daily windows in a timezone when notifications wait (they are held, then
sent when the window ends; never dropped).

A window "22:00"-"07:00" crosses midnight; ``days`` names the days a window *starts* on
("fri" covers Friday 22:00 to Saturday 07:00); ``let_through = ["critical"]`` lets messages
of those severities out at once. Pure functions over aware datetimes.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

from alertd.config.model import QuietHours
from alertd.dispatch.labels import glob_match

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
MAX_CHAIN = 16  # windows that touch each other are followed at most this far


def parse_clock(text: str) -> time:
    """ "22:00" -> time(22, 0); "24:00" is not a time of day (use "00:00")."""
    try:
        hours, minutes = text.strip().split(":")
        return time(int(hours), int(minutes))
    except ValueError:
        raise ValueError(f'quiet hours time {text!r} is not HH:MM (e.g. "22:00")') from None


def _window_end(window: QuietHours, when: datetime, default_tz: str) -> datetime | None:
    """The end of ``window`` if ``when`` falls inside it, else None."""
    tz = ZoneInfo(window.timezone or default_tz)
    local = when.astimezone(tz)
    start, end = parse_clock(window.start), parse_clock(window.end)
    if start == end:
        return None
    days = {d.lower()[:3] for d in window.days}
    for back in (0, 1):  # a window that started today, or yesterday and crosses midnight
        day = local.date() - timedelta(days=back)
        if days and DAYS[day.weekday()] not in days:
            continue
        begin = datetime.combine(day, start, tzinfo=tz)
        finish = datetime.combine(day if end > start else day + timedelta(days=1), end, tzinfo=tz)
        if begin <= local < finish:
            return finish
    return None


def quiet_until(
    windows: Sequence[QuietHours],
    rule: str,
    when: datetime,
    default_tz: str = "UTC",
    *,
    level: str = "warning",
) -> datetime | None:
    """When the quiet hours that apply to ``rule`` at ``when`` end (windows that touch are
    followed); None when it is not quiet. A window does not hold a message of a ``level``
    (a severity, or ``resolved``) it lets through."""
    applicable = [
        w
        for w in windows
        if (not w.rules or any(glob_match(p, rule) for p in w.rules)) and level not in w.let_through
    ]
    until: datetime | None = None
    current = when
    for _ in range(MAX_CHAIN):
        ends = [e for w in applicable if (e := _window_end(w, current, default_tz)) is not None]
        if not ends:
            break
        until = current = max(ends)
    return until
