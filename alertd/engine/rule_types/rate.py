"""``type = "rate"``: ``count`` matching events within ``within`` seconds, per key.

One alert per burst: when the count is reached the window starts empty again, so the next
alert needs ``count`` new events. ``cooldown`` holds back alerts this soon after the last.
The window itself is not persisted (a restart starts counting afresh); the cooldown is.
"""

from __future__ import annotations

from collections import deque
from typing import Any

from alertd.engine.rule_types.base import SWEEP_MIN, RuleEvaluator
from alertd.events import Alert, Event
from alertd.messages.formats import duration


class RateRule(RuleEvaluator):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        count, within = self.rule.settings.count, self.rule.settings.within
        assert count is not None and within is not None
        self.count = count
        self.within = within
        self.windows: dict[str, deque[float]] = {}
        self._windows_sweep_at = SWEEP_MIN

    def on_event(self, event: Event, ctx: dict[str, Any], now: float) -> list[Alert]:
        key = self.key_for(event, ctx)
        window = self.windows.get(key)
        if window is None:
            self.forget_stale(now)  # a new key: the moment to bound memory
            window = self.windows[key] = deque()
        window.append(now)
        horizon = now - self.within
        while window[0] <= horizon:
            window.popleft()
        if len(window) < self.count:
            return []
        seen = len(window)
        del self.windows[key]
        if self.cooling(key, now):
            return []
        head = f"{self.rule.name}: {seen} x {event.kind} within {duration(self.within)} ({key})"
        return [
            self.make_alert(
                key,
                "firing",
                self.context(ctx, count=self.count, within=self.within, seen=seen),
                cause=self.event_cause(event),
                now=now,
                headline=head,
            )
        ]

    def tracked_keys(self) -> int:
        return len(self.windows)

    def forget_stale(self, now: float) -> None:
        super().forget_stale(now)
        if len(self.windows) >= self._windows_sweep_at:
            horizon = now - self.within
            for key, window in list(self.windows.items()):
                if window[-1] <= horizon:
                    del self.windows[key]
            self._windows_sweep_at = max(SWEEP_MIN, 2 * len(self.windows))
