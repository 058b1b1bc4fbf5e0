"""``type = "order_timeout"``: an order open longer than ``open_for``, or partly filled with no
further fill for ``stalled_for``.

Tracks orders from their first matching order event (``where`` is checked then: it picks
which orders to time) until ``order.filled``/``order.cancelled``, which stop the timers and,
if an alert had fired for the order, send its resolution. The age counts from when alertd
first saw the order. A stalled alert is resolved by the next progress (reason
``progress``) unless the order's open alert still stands. Open orders survive a restart with
their real deadlines.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from decimal import Decimal
from typing import Any

import attrs

from alertd.engine.compile import ORDER_END_KINDS
from alertd.engine.rule_types.base import KeyedEvaluator, TimerAlert
from alertd.events import Alert, AlertStatus, Event
from alertd.messages.formats import duration


@attrs.define
class _Order:
    fields: Mapping[str, Any]
    opened: float
    last_progress: float | None = None
    filled: Decimal | None = None
    fired: set[str] = attrs.field(factory=set)  # "open" / "stalled" alerts sent


class OrderTimeoutRule(KeyedEvaluator[_Order]):
    """``keys``: the open orders being timed, by key."""

    checks_where = True

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.open_for = self.rule.settings.open_for
        self.stalled_for = self.rule.settings.stalled_for

    def default_key(self, event: Event) -> str:
        return f"{event.account}/{getattr(event, 'order_id', '-')}"

    def on_event(self, event: Event, ctx: dict[str, Any], now: float) -> list[Alert]:
        key = self.key_for(event, ctx)
        order = self.keys.get(key)
        if event.kind in ORDER_END_KINDS:
            if order is None:
                return []
            del self.keys[key]
            self.disarm(key, "open")
            self.disarm(key, "stalled")
            self.mark(key)
            if not order.fired:
                return []
            order.fields = self.event_fields(ctx)
            reason = event.kind.removeprefix("order.")
            cause = self.event_cause(event)
            return [self._alert(key, order, "resolved", reason=reason, cause=cause, now=now)]
        if order is None:
            if not self.where_ok(ctx):
                return []
            order = self.keys[key] = _Order(fields={}, opened=now)
            if self.open_for is not None:
                self.arm(key, "open", now + self.open_for)
        order.fields = self.event_fields(ctx)
        filled = ctx.get("filled")
        alerts: list[Alert] = []
        if event.kind == "order.partially_filled" and (
            order.last_progress is None or filled is None or order.filled is None
            or filled > order.filled
        ):  # fmt: skip
            if "stalled" in order.fired:
                order.fired.discard("stalled")
                # The stall is over. Resolve the key only when nothing else about the order
                # is firing: an "open" alert still stands, and its fill or cancel resolves.
                if not order.fired:
                    alerts.append(
                        self._alert(
                            key,
                            order,
                            "resolved",
                            reason="progress",
                            cause=self.event_cause(event),
                            now=now,
                        )
                    )
            order.last_progress = now
            order.filled = filled
            if self.stalled_for is not None:
                self.arm(key, "stalled", now + self.stalled_for)
        self.mark(key)
        return alerts

    def timer_alert(self, state: _Order, tag: str) -> TimerAlert:
        # an alert of either tag repeats on its own timer: no separate "repeat" tag
        return "repeat" if tag in state.fired else "first"

    def fire_timer(
        self, key: str, state: _Order, tag: str, *, first: bool, cause: str, due: float, now: float
    ) -> Alert:
        state.fired.add(tag)
        if self.repeat is not None:
            self.arm(key, tag, self.next_repeat(due, now))
        return self._alert(key, state, "firing", reason=tag, cause=cause, now=now)

    def _alert(
        self, key: str, order: _Order, status: AlertStatus, *, reason: str, cause: str, now: float
    ) -> Alert:
        age = now - order.opened
        since_progress = None if order.last_progress is None else now - order.last_progress
        f = self.kept(order.fields)
        what = " ".join(
            str(v) for v in (f.get("order_id"), f.get("symbol"), f.get("side")) if v is not None
        )
        if status == "resolved" and reason == "progress":
            head = (
                f"{self.rule.name}: order {what} filling again after "
                f"{duration(since_progress)} without progress"
            )
        elif status == "resolved":
            head = f"{self.rule.name}: order {what} {reason} after {duration(age)}"
        elif reason == "stalled":
            head = (
                f"{self.rule.name}: order {what} partly filled, no progress for "
                f"{duration(since_progress)}"
            )
        else:
            head = f"{self.rule.name}: order {what} open for {duration(age)}"
        ctx = self.context(
            f,
            reason=reason,
            age=age,
            open_for=self.open_for,
            stalled_for=self.stalled_for,
            since_progress=since_progress,
        )
        return self.make_alert(key, status, ctx, cause=cause, now=now, headline=head)

    def dump_state(self, state: _Order) -> dict[str, Any]:
        return {
            "opened": self.clock.epoch(state.opened),
            "last_progress": self.epoch_or_none(state.last_progress),
            "filled": None if state.filled is None else str(state.filled),
            "fired": sorted(state.fired),
        }

    def load_state(self, data: Mapping[str, Any], fields: dict[str, Any]) -> _Order | None:
        if "opened" not in data:
            return None
        return _Order(
            fields=fields,
            opened=self.clock.mono(data["opened"]),
            last_progress=self.mono_or_none(data.get("last_progress")),
            filled=None if data.get("filled") is None else Decimal(data["filled"]),
            fired=set(data.get("fired") or ()),
        )

    def start(self, now: float, accounts: Any) -> None:
        for key, order in self.keys.items():
            if self.open_for is not None:
                if "open" not in order.fired:
                    self.arm(key, "open", order.opened + self.open_for)
                elif self.repeat is not None:
                    self.arm(key, "open", now + self.repeat)
            if self.stalled_for is not None and order.last_progress is not None:
                if "stalled" not in order.fired:
                    self.arm(key, "stalled", order.last_progress + self.stalled_for)
                elif self.repeat is not None:
                    self.arm(key, "stalled", now + self.repeat)

    def merged(self, mine: _Order, shared: _Order) -> _Order:
        # Progress this replica saw is current; the age counts from the previous owner's
        # first sight, and what it already sent stays sent.
        return attrs.evolve(mine, opened=shared.opened, fired=mine.fired | shared.fired)

    def resume(
        self, now: float, accounts: frozenset[str], keys: Iterable[str], *, fresh: frozenset[str]
    ) -> None:
        for key in keys:
            order = self.keys[key]
            for tag, since, span in (
                ("open", order.opened, self.open_for),
                ("stalled", order.last_progress, self.stalled_for),
            ):
                if span is None or since is None:
                    continue
                if tag not in order.fired:
                    self.arm(key, tag, since + span)
                elif self.repeat is not None:
                    last = self.last_alert.get(key, now)
                    self.arm(key, tag, max(now, last + self.repeat))

    def accounts_changed(
        self, now: float, accounts: Iterable[str], removed: frozenset[str]
    ) -> None:
        # A removed or disabled account's orders are no longer timed.
        self.forget_accounts(removed, "open", "stalled")
