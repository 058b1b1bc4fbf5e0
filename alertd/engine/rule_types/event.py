"""``type = "event"``: every matching event is an alert, unless the key is cooling down."""

from __future__ import annotations

from typing import Any

from alertd.engine.rule_types.base import RuleEvaluator
from alertd.events import Alert, Event


class EventRule(RuleEvaluator):
    def default_key(self, event: Event) -> str:
        parts = [event.account]
        for name in ("symbol", "currency", "order_id"):
            value = getattr(event, name, None)
            if value is not None:
                parts.append(str(value))
        return "/".join(parts)

    def on_event(self, event: Event, ctx: dict[str, Any], now: float) -> list[Alert]:
        key = self.key_for(event, ctx)
        if self.cooling(key, now):
            return []
        self.forget_stale(now)
        alert = self.make_alert(
            key,
            "firing",
            self.context(ctx),
            cause=self.event_cause(event),
            now=now,
            headline=self.event_summary(ctx),
        )
        if self.cooldown is None:
            # Nothing to remember: without a cooldown the last alert time never matters.
            self.last_alert.pop(key, None)
            self.changed.discard((self, key))
        return [alert]
