"""How an alert about the watching itself (``stream.*``) reads by default: what happened to
the account's streams in words a trader reads at 3 a.m., with every window shown as its start
and end in the configured timezone and its length, e.g.
``blind 17:38:36.2-17:38:51.9 CET (15.7 s), BTC 1 -> 1.6 meanwhile``. A fact about the whole
connection names no stream (never ``*``).

``headline`` is the title after the account (``[px] ...``), ``sentence`` the first line of
the default body. Both take the context templates see; its ``localtime`` helper (the
template helper, bound to ``[daemon] timezone``) shows the times, UTC without one.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from alertd.messages.formats import duration, num
from alertd.sources.streams import CONNECTION as CONNECTION  # noqa: PLC0414 (alert.py uses it)

Localtime = Callable[..., str]

_DOWN = {
    "alertd crashed": "alertd was not running (killed or crashed)",
    "alertd stopped": "alertd was stopped",
}
_MISSED = {
    "overflow": "events dropped, the queue was full",
    "sequence": "events missed, the exchange's sequence jumped",
}


def _utc(when: datetime, fmt: str = "%Y-%m-%d %H:%M:%S %Z") -> str:
    return when.astimezone(UTC).strftime(fmt)


def _localtime(ctx: Mapping[str, Any]) -> Localtime:
    found = ctx.get("localtime")
    return found if callable(found) else _utc


def length(seconds: float) -> str:
    """A window's length: ``15.7 s`` under a minute, else ``2m 5s``."""
    return f"{seconds:.1f} s" if seconds < 60 else duration(seconds)


def clock(when: datetime, localtime: Localtime) -> str:
    """``17:38:36.2``: the time of day with tenths, in the display zone."""
    return f"{localtime(when, '%H:%M:%S')}.{when.microsecond // 100_000}"


def window(since: datetime, until: datetime, localtime: Localtime) -> str:
    """``17:38:36.2-17:38:51.9 CET (15.7 s)``; with the date of each end when they are on
    different days in the display zone."""
    start, end = clock(since, localtime), clock(until, localtime)
    if localtime(since, "%Y-%m-%d") != localtime(until, "%Y-%m-%d"):
        start = f"{localtime(since, '%Y-%m-%d')} {start}"
        end = f"{localtime(until, '%Y-%m-%d')} {end}"
    zone = localtime(until, "%Z")
    return f"{start}-{end} {zone} ({length((until - since).total_seconds())})"


def moved(evidence: Iterable[Any]) -> str:
    """``BTC 1 -> 1.6, USDT 500 -> 450``: what each balance was before and after."""
    return ", ".join(f"{e.currency} {num(e.before)} -> {num(e.after)}" for e in evidence)


def _on(ctx: Mapping[str, Any]) -> str:
    stream = ctx.get("stream")
    return "" if stream in (None, CONNECTION) else f"{stream}: "


def headline(ctx: Mapping[str, Any]) -> str:
    """One line saying what happened to the account's watching (see the module docstring)."""
    kind, localtime = ctx.get("kind"), _localtime(ctx)
    since, until, why = ctx.get("since"), ctx.get("until"), ctx.get("why") or "offline"
    if kind == "stream.disconnected":
        return f"{_on(ctx)}connection lost: {ctx.get('reason')}"
    if kind == "stream.connected":
        downtime = ctx.get("downtime")
        return f"{_on(ctx)}connected" if downtime is None else f"back after {length(downtime)}"
    if kind == "stream.stale":
        return f"{_on(ctx)}no data for {duration(ctx.get('silent_for'))}"
    if kind == "stream.error":
        return f"{_on(ctx)}error: {ctx.get('reason')}"
    if not isinstance(since, datetime) or not isinstance(until, datetime):
        return f"{kind} {_on(ctx)}".strip()
    span = window(since, until, localtime)
    if kind == "stream.gap.evidence":
        change = ctx.get("change")
        sign = "+" if change is not None and change >= 0 else ""
        return (
            f"{ctx.get('currency')} {num(ctx.get('before'))} -> {num(ctx.get('after'))}"
            f" ({sign}{num(change)}) while blind {span}"
        )
    if why in _MISSED:
        return f"{_on(ctx)}{_MISSED[why]} {span}"
    text = f"blind {span}"
    down_for = ctx.get("down_for")
    if why in _DOWN and down_for is not None:
        text += f": {why} ({length(down_for)} down)"
    evidence = ctx.get("evidence")
    if evidence:
        text += f", {moved(evidence)} meanwhile"
    return text


def sentence(ctx: Mapping[str, Any]) -> str:
    """The first line of the default body: what was lost, and what that means."""
    kind, why = ctx.get("kind"), ctx.get("why") or "offline"
    account = ctx.get("account")
    if kind == "stream.gap":
        cause = _DOWN.get(why) or _MISSED.get(why) or "the connection was down"
        return (
            f"{account}: events may have been missed ({cause}): {headline(ctx)}. Check the"
            " exchange for fills, cancels and balance moves in that window."
        )
    if kind == "stream.gap.evidence":
        return f"{account}: a balance moved while alertd was blind: {headline(ctx)}."
    if kind == "stream.disconnected":
        return (
            f"{account}: alertd is blind to this account until it reconnects ({ctx.get('reason')})."
        )
    if kind == "stream.connected":
        return f"{account}: watching again: {headline(ctx)}."
    return f"{account}: {headline(ctx)}."
