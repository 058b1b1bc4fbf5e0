"""Grouping: alerts of one rule and key that arrive close together go out as one message.

The first alert of a group waits ``group_wait`` for company; after a group was sent, further
alerts of it are collected and sent at most once per ``group_interval``. A group idle for a
whole interval is forgotten, so its next alert again waits only ``group_wait``. Times are
trio-clock seconds. Pure, no I/O (STYLE: keep the core pure).
"""

from __future__ import annotations

import heapq
from collections import deque
from collections.abc import Iterable

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
    """Groups by (rule, key). Deadlines are kept in a heap and flushed groups in a queue by
    flush time, so ``pop_due`` and ``next_deadline`` cost O(due), not O(groups): with a
    per-alert key (an order id) at hundreds of alerts a second, tens of thousands of idle
    groups wait out their ``group_interval`` here, and a scan of all of them on every flush
    was the cost."""

    group_wait: float
    group_interval: float
    _groups: dict[GroupKey, _State] = attrs.field(factory=dict)
    # (flush_at, sequence, key) of groups holding alerts; entries whose group was flushed or
    # changed since are skipped when they surface (lazy deletion).
    _deadlines: list[tuple[float, int, GroupKey]] = attrs.field(factory=list)
    # (last_flush, key) in flush order, for forgetting idle groups.
    _flushed: deque[tuple[float, GroupKey]] = attrs.field(factory=deque)
    _seq: int = 0

    def add(self, alert: Alert, now: float) -> None:
        key = (alert.rule, alert.key)
        state = self._groups.get(key)
        if state is None:
            state = self._groups[key] = _State()
        if not state.alerts:
            if state.last_flush is None or now - state.last_flush >= self.group_interval:
                state.flush_at = now + self.group_wait
            else:
                state.flush_at = state.last_flush + self.group_interval
            self._seq += 1
            heapq.heappush(self._deadlines, (state.flush_at, self._seq, key))
        state.alerts.append(alert)

    def immediate(self, alert: Alert, now: float) -> bool:
        """Whether ``alert`` would be due at once if added now (no wait, no interval), so a
        caller may send it without holding it (``mark_flushed`` afterwards)."""
        if self.group_wait > 0:
            return False
        state = self._groups.get((alert.rule, alert.key))
        return state is None or (
            not state.alerts
            and (state.last_flush is None or now - state.last_flush >= self.group_interval)
        )

    def mark_flushed(self, keys: Iterable[GroupKey], now: float) -> None:
        """Record that the groups ``keys`` were sent at ``now`` without passing through
        ``add`` (see ``immediate``): their next alerts wait out ``group_interval``."""
        for key in keys:
            self._groups[key] = _State(last_flush=now)
            self._flushed.append((now, key))
        self._forget_idle(now)

    def _valid(self, flush_at: float, key: GroupKey) -> _State | None:
        state = self._groups.get(key)
        if state is None or not state.alerts or state.flush_at != flush_at:
            return None
        return state

    def next_deadline(self) -> float | None:
        heap = self._deadlines
        while heap and self._valid(heap[0][0], heap[0][2]) is None:
            heapq.heappop(heap)
        return heap[0][0] if heap else None

    def pop_due(self, now: float) -> list[Group]:
        """Groups whose time has come, emptied; forgets groups idle for an interval."""
        due: list[Group] = []
        heap = self._deadlines
        while heap and heap[0][0] <= now:
            flush_at, _, key = heapq.heappop(heap)
            state = self._valid(flush_at, key)
            if state is None:
                continue
            due.append(Group(rule=key[0], key=key[1], alerts=tuple(state.alerts)))
            state.alerts = []
            state.flush_at = None
            state.last_flush = now
            self._flushed.append((now, key))
        self._forget_idle(now)
        return due

    def _forget_idle(self, now: float) -> None:
        flushed = self._flushed
        while flushed and now - flushed[0][0] >= self.group_interval:
            at, key = flushed.popleft()
            state = self._groups.get(key)
            if state is not None and not state.alerts and state.last_flush == at:
                del self._groups[key]

    def pop_all(self, now: float) -> list[Group]:
        """Every group with alerts, due or not (for shutdown)."""
        for key, state in self._groups.items():
            if state.alerts:
                state.flush_at = now
                self._seq += 1
                heapq.heappush(self._deadlines, (now, self._seq, key))
        return self.pop_due(now)

    @property
    def held(self) -> int:
        return sum(len(s.alerts) for s in self._groups.values())
