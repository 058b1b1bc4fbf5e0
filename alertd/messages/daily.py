"""The text of a ``summary`` rule's digest: one message that says, per account, what happened
(fills and cancels with their notional), how well alertd saw it (blind windows with their
lengths, disconnects, stale streams, unreadable frames), how each account's connection
stands now, and what alertd itself did (messages sent, failed, waiting) and holds back
(silences). Short lines, so it reads on a phone; every time in the configured zone, named.

The engine's summary rule (``engine/rule_types/summary``) gathers a ``DailyReport`` and calls
``daily_text``; this module only decides how it reads.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, tzinfo
from decimal import Decimal
from typing import Literal

import attrs

from alertd.messages.formats import duration, num

MAX_WINDOWS = 5  # blind windows listed one by one per account (the rest are counted)


@attrs.frozen(kw_only=True)
class BlindWindow:
    """A time alertd could not see an account's events (a ``stream.gap``)."""

    since: datetime
    until: datetime
    why: str

    @property
    def seconds(self) -> float:
        return max(0.0, (self.until - self.since).total_seconds())


@attrs.frozen(kw_only=True)
class AccountDay:
    """One account over the summary's period, and its connection now."""

    account: str
    exchange: str | None = None
    fills: int = 0
    fill_notional: Mapping[str, Decimal] = attrs.field(factory=dict)  # quote currency -> sum
    cancels: int = 0
    cancel_notional: Mapping[str, Decimal] = attrs.field(factory=dict)
    disconnects: int = 0
    stale: int = 0  # stream.stale events
    errors: int = 0  # stream.error events (frames that could not be read)
    windows: tuple[BlindWindow, ...] = ()  # the last MAX_WINDOWS blind windows
    blind_count: int = 0
    blind_seconds: float = 0.0
    # "unknown": nothing heard since alertd started (a restart forgets the old state)
    state: Literal["up", "down", "unknown"] = "unknown"
    state_since: datetime | None = None
    state_reason: str | None = None


@attrs.frozen(kw_only=True)
class Deliveries:
    """The messages alertd queued during the period, by what became of them (the outbox)."""

    sent: int = 0
    failed: int = 0  # given up on (expired undelivered)
    waiting: int = 0  # not delivered yet (quiet hours, retries)
    muted: int = 0  # silenced or inhibited before sending
    failing: tuple[str, ...] = ()  # channels whose waiting messages have failed attempts


@attrs.frozen(kw_only=True)
class SilenceNote:
    """A silence in force when the summary was built."""

    rule: str
    matchers: Mapping[str, str] = attrs.field(factory=dict)
    ends: datetime
    comment: str = ""


@attrs.frozen(kw_only=True)
class DailyReport:
    rule: str
    since: datetime
    until: datetime
    late_from: datetime | None = None  # when it was due, if alertd was down then
    accounts: tuple[AccountDay, ...] = ()
    deliveries: Deliveries | None = None  # None: not known (no state database, or unreadable)
    silences: tuple[SilenceNote, ...] | None = None


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def _clock(moment: datetime, tz: tzinfo, ref: datetime, *, tenths: bool = False) -> str:
    """``moment`` as a local time of day; with the weekday when it is not on ``ref``'s day."""
    local = moment.astimezone(tz)
    text = local.strftime("%H:%M:%S" if tenths else "%H:%M")
    if tenths:
        text += f".{local.microsecond // 100_000}"
    if local.date() != ref.astimezone(tz).date():
        text = f"{local:%a} {text}"
    return text


def _length(seconds: float) -> str:
    """A blind time's length: under a minute with its tenth (15.7s), else ``duration``."""
    return f"{seconds:.1f}s" if seconds < 60 else duration(seconds)


def _money(sums: Mapping[str, Decimal]) -> str:
    return ", ".join(f"{num(v, 2)} {c}" for c, v in sorted(sums.items()))


def _state(day: AccountDay, tz: tzinfo, until: datetime) -> str:
    since = day.state_since
    if day.state == "unknown" or since is None:
        return "no connection news since alertd started"
    held = duration((until - since).total_seconds())
    if day.state == "up":
        return f"up since {_clock(since, tz, until)} ({held})"
    reason = f": {day.state_reason}" if day.state_reason else ""
    return f"DOWN since {_clock(since, tz, until)} ({held}){reason}"


def _account_lines(day: AccountDay, tz: tzinfo, until: datetime) -> list[str]:
    name = f"{day.account} ({day.exchange})" if day.exchange else day.account
    lines = [f"{name}: {_state(day, tz, until)}"]
    for n, word, sums in (
        (day.fills, "fill", day.fill_notional),
        (day.cancels, "cancel", day.cancel_notional),
    ):
        if n:
            money = _money(sums)
            lines.append(f" {_plural(n, word)}" + (f", {money}" if money else ""))
    if not day.fills and not day.cancels:
        lines.append(" no fills, no cancels")
    if day.blind_count:
        lines.append(
            f" blind {_plural(day.blind_count, 'time')}, {_length(day.blind_seconds)} in all:"
        )
        for w in day.windows:
            lines.append(
                f"  {_clock(w.since, tz, until, tenths=True)}-"
                f"{_clock(w.until, tz, until, tenths=True)} ({_length(w.seconds)}) {w.why}"
            )
        if day.blind_count > len(day.windows):
            lines.append(f"  ... and {day.blind_count - len(day.windows)} earlier")
    else:
        lines.append(" never blind")
    troubles = [
        _plural(n, word)
        for n, word in (
            (day.disconnects, "disconnect"),
            (day.stale, "stale stream"),
            (day.errors, "unreadable frame"),
        )
        if n
    ]
    if troubles:
        lines.append(" " + ", ".join(troubles))
    return lines


def _delivery_lines(d: Deliveries | None) -> list[str]:
    if d is None:
        return ["Messages: not counted"]
    parts = [f"{d.sent} sent", f"{d.failed} failed", f"{d.waiting} waiting"]
    if d.muted:
        parts.append(f"{d.muted} muted")
    lines = ["Messages: " + ", ".join(parts)]
    if d.failing:
        lines.append(" failing: " + ", ".join(d.failing))
    return lines


def _silence_lines(
    silences: tuple[SilenceNote, ...] | None, tz: tzinfo, until: datetime
) -> list[str]:
    if silences is None:
        return []
    if not silences:
        return ["Silenced: nothing"]
    lines = [f"Silenced: {len(silences)}"]
    for s in silences:
        match = " ".join(f"{k}={v}" for k, v in sorted(s.matchers.items()))
        end = s.ends.astimezone(tz)
        when = _clock(s.ends, tz, until) if end.year < 9999 else "further notice"
        text = f" {s.rule}" + (f" [{match}]" if match else "") + f" until {when}"
        lines.append(text + (f" ({s.comment})" if s.comment else ""))
    return lines


def _headline(report: DailyReport) -> str:
    days = report.accounts
    down = [d.account for d in days if d.state == "down"]
    if not days:
        health = "no accounts watched"
    elif down:
        health = f"{len(down)} of {len(days)} DOWN ({', '.join(down)})"
    elif all(d.state == "up" for d in days):
        health = "all up" if len(days) > 1 else "up"
    else:
        health = f"{sum(d.state == 'up' for d in days)} of {len(days)} up"
    fills = sum(d.fills for d in days)
    blind = sum(d.blind_count for d in days)
    parts = [health, _plural(fills, "fill")]
    if blind:
        parts.append(f"blind {_plural(blind, 'time')}")
    failed = report.deliveries.failed if report.deliveries is not None else 0
    if failed:
        parts.append(f"{failed} failed")
    return ", ".join(parts)


def daily_text(report: DailyReport, tz: tzinfo) -> tuple[str, str]:
    """Title and body of the digest, times in ``tz`` with the zone's name."""
    until = report.until.astimezone(tz)
    zone = until.tzname() or ""
    title = f"{report.rule} {until:%a %d %b %H:%M} {zone}: {_headline(report)}".replace("  ", " ")
    period = duration((report.until - report.since).total_seconds())
    lines = [
        f"{_clock(report.since, tz, report.until)} to {until:%a %H:%M} {zone} ({period})",
    ]
    if report.late_from is not None:
        lines.append(
            f"late: due {_clock(report.late_from, tz, report.until)}, alertd was not running"
        )
    for day in report.accounts:
        lines.append("")
        lines.extend(_account_lines(day, tz, report.until))
    lines.append("")
    lines.extend(_delivery_lines(report.deliveries))
    lines.extend(_silence_lines(report.silences, tz, report.until))
    return title, "\n".join(lines)
