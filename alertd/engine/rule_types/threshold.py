"""``type = "threshold"``: ``value`` crosses ``below``/``above``.

Fires once when the value breaches (strictly below ``below`` / strictly above ``above``),
after ``for`` if set (the breach must last that long: an event showing the value back on the
good side of the threshold cancels the pending alert). Resolves once the value is back at or
above ``resolve_above`` (default ``below``) / at or below ``resolve_below`` (default
``above``): between the two lines nothing changes (hysteresis). ``repeat`` re-sends the
firing alert while it lasts; ``cooldown`` holds back a new firing this soon after the last.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from decimal import Decimal
from typing import Any

import attrs

from alertd.engine.rule_types.base import KeyedEvaluator
from alertd.events import Alert, AlertStatus, Event
from alertd.messages.formats import dec, duration, to_decimal

log = logging.getLogger(__name__)


@attrs.define
class _Key:
    fields: Mapping[str, Any] = attrs.field(factory=dict)
    value: Decimal | None = None
    firing: str | None = None  # "below" / "above" while firing
    pending: str | None = None  # side of a breach waiting for ``for``
    pending_since: float | None = None
    since: float | None = None  # when it started firing


class ThresholdRule(KeyedEvaluator[_Key]):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        s = self.rule.settings
        self.below = s.below
        self.above = s.above
        self.resolve_above = s.resolve_above if s.resolve_above is not None else s.below
        self.resolve_below = s.resolve_below if s.resolve_below is not None else s.above
        self.for_ = s.for_
        self._value_error_logged = False

    def default_key(self, event: Event) -> str:
        parts = [event.account]
        for name in ("symbol", "currency"):
            value = getattr(event, name, None)
            if value is not None:
                parts.append(str(value))
        return "/".join(parts)

    def breach(self, value: Decimal) -> str | None:
        if self.below is not None and value < self.below:
            return "below"
        if self.above is not None and value > self.above:
            return "above"
        return None

    def recovered(self, side: str, value: Decimal) -> bool:
        if side == "below":
            assert self.resolve_above is not None
            return value >= self.resolve_above
        assert self.resolve_below is not None
        return value <= self.resolve_below

    def _value(self, ctx: dict[str, Any]) -> Decimal | None:
        assert self.rule.value is not None
        try:
            raw = self.rule.value(ctx)
            return None if raw is None else to_decimal(raw)
        except Exception as exc:  # a user's expression: skip this event, say so once
            if not self._value_error_logged:
                self._value_error_logged = True
                log.warning(
                    "engine.value_error rule=%s error=%s: %s (event skipped; logged once)",
                    self.rule.name,
                    type(exc).__name__,
                    exc,
                )
            return None

    def on_event(self, event: Event, ctx: dict[str, Any], now: float) -> list[Alert]:
        value = self._value(ctx)
        if value is None:
            return []
        key = self.key_for(event, ctx)
        st = self.keys.get(key)
        if st is None:
            st = self.keys[key] = _Key()
        st.fields = self.event_fields(ctx)
        st.value = value
        alerts: list[Alert] = []
        if st.firing is not None:
            if self.recovered(st.firing, value):
                alerts.append(self._alert(key, st, "resolved", self.event_cause(event), now))
                st.firing = None
                st.since = None
                self.disarm(key, "repeat")
                self.mark(key)
            return alerts
        side = self.breach(value)
        if side is None:
            if st.pending is not None:
                st.pending = st.pending_since = None
                self.disarm(key, "pending")
                self.mark(key)
        elif self.for_ is None:
            # the cause (event identity) is computed only when an alert is made: most
            # events of a threshold rule change nothing
            alerts += self._fire(key, st, side, self.event_cause(event), now)
        elif st.pending != side:
            st.pending, st.pending_since = side, now
            self.arm(key, "pending", now + self.for_)
            self.mark(key)
        return alerts

    def on_key_timer(
        self, key: str, st: _Key, tag: str, deadline: float, now: float
    ) -> list[Alert]:
        if tag == "pending" and st.pending is not None and st.firing is None:
            side = st.pending
            st.pending = st.pending_since = None
            return self._fire(key, st, side, self.timer_cause(tag, deadline), now)
        if tag == "repeat" and st.firing is not None:
            alert = self._alert(key, st, "firing", self.timer_cause(tag, deadline), now)
            self.arm(key, "repeat", self.next_repeat(deadline, now))
            return [alert]
        return []

    def _fire(self, key: str, st: _Key, side: str, cause: str, now: float) -> list[Alert]:
        self.mark(key)
        if self.cooling(key, now):
            return []  # stays not firing: the next event still in breach fires after cooldown
        st.firing = side
        st.since = now
        if self.repeat is not None:
            self.arm(key, "repeat", now + self.repeat)
        return [self._alert(key, st, "firing", cause, now)]

    def _alert(self, key: str, st: _Key, status: AlertStatus, cause: str, now: float) -> Alert:
        side = st.firing or st.pending or "below"
        threshold = self.below if side == "below" else self.above
        pending_for = self.for_
        fields = self.kept(st.fields)
        ctx = self.context(fields, value=st.value, threshold=threshold, pending_for=pending_for)
        what = fields.get("currency") or fields.get("symbol") or ""
        label = self.rule.settings.value or "value"
        if status == "firing":
            head = f"{self.rule.name}: {label} {dec(st.value)} {side} {dec(threshold)}"
            if pending_for is not None:
                head += f" for {duration(pending_for)}"
        else:
            head = f"{self.rule.name}: {label} back at {dec(st.value)}"
        head += f" {what}".rstrip()
        return self.make_alert(key, status, ctx, cause=cause, now=now, headline=head)

    # -- persistence: only a firing or pending key has state worth keeping ------------------

    def dump_state(self, state: _Key) -> dict[str, Any] | None:
        if not (state.firing or state.pending):
            return None
        return {
            "value": None if state.value is None else str(state.value),
            "firing": state.firing,
            "pending": state.pending,
            "pending_since": self.epoch_or_none(state.pending_since),
            "since": self.epoch_or_none(state.since),
        }

    def load_state(self, data: Mapping[str, Any], fields: dict[str, Any]) -> _Key | None:
        if not (data.get("firing") or data.get("pending")):
            return None
        return _Key(
            fields=fields,
            value=None if data.get("value") is None else Decimal(data["value"]),
            firing=data.get("firing"),
            pending=data.get("pending"),
            pending_since=self.mono_or_none(data.get("pending_since")),
            since=self.mono_or_none(data.get("since")),
        )

    def resume(
        self, now: float, accounts: frozenset[str], keys: Iterable[str], *, fresh: frozenset[str]
    ) -> None:
        for key in keys:
            st = self.keys[key]
            if st.pending is not None and st.pending_since is not None and self.for_:
                self.arm(key, "pending", st.pending_since + self.for_)
            if st.firing is not None and self.repeat is not None:
                last = self.last_alert.get(key, now)
                self.arm(key, "repeat", max(now, last + self.repeat))

    def start(self, now: float, accounts: Any) -> None:
        for key, st in self.keys.items():
            if st.pending is not None and st.pending_since is not None and self.for_:
                self.arm(key, "pending", st.pending_since + self.for_)
            if st.firing is not None and self.repeat is not None:
                self.arm(key, "repeat", now + self.repeat)
