"""Grouping: alerts of one rule and key that arrive close together go out as one message.

The schedule is a function of the alerts' arrival times alone, never of when anyone asks for
due groups or of how alerts were batched on the way in:

- An alert that finds its group idle (never sent, or last sent ``group_interval`` or more
  ago) opens it: the group is due ``group_wait`` after that alert arrived.
- An alert that arrives while its group waits, *before* the group's due time, joins it.
- An alert that arrives at or after that due time, or while the group's last send is less
  than ``group_interval`` old, waits for the next send: ``group_interval`` after the last.

So with ``group_wait = 0`` the first alert of a group is due the moment it arrives, alone,
and alerts of that group arriving together with it (from the same frame) go out together
one ``group_interval`` later. A group counts as sent at its due time (``Group.due``), not
when the dispatcher got round to it, so a busy dispatcher does not shift the next interval.
A group idle for a whole interval is forgotten. Times are trio-clock seconds. Pure, no I/O
(STYLE: keep the core pure).
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable

import attrs

from alertd.events import Alert

GroupKey = tuple[str, str]  # (rule, key)


def group_key(alert: Alert) -> GroupKey:
    return (alert.rule, alert.key)


@attrs.frozen(kw_only=True)
class Group:
    """Alerts of one rule and key that go out as one message, due at ``due``."""

    rule: str
    key: str
    alerts: tuple[Alert, ...]
    due: float


@attrs.frozen(kw_only=True)
class GroupingStatistics:
    groups_waiting: int  # groups holding alerts for their group_wait or group_interval
    alerts_waiting: int  # the alerts in those groups
    groups_remembered: int  # waiting, or sent less than group_interval ago


@attrs.define
class _State:
    alerts: list[Alert] = attrs.field(factory=list)  # waiting, in arrival order
    due: float = 0.0  # when the waiting alerts go out (meaningful while there are some)
    last_sent: float | None = None  # the due time of the last send


@attrs.define
class Grouper:
    """Groups by (rule, key). Deadlines are kept in a heap and sent groups in another, so
    ``pop_due`` and ``next_deadline`` cost O(due), not O(groups): with a per-alert key (an
    order id) at hundreds of alerts a second, tens of thousands of idle groups wait out
    their ``group_interval`` here, and a scan of all of them on every flush was the cost."""

    group_wait: float
    group_interval: float
    _groups: dict[GroupKey, _State] = attrs.field(factory=dict)
    # (due, sequence, key) of groups holding alerts; entries whose group was sent or changed
    # since are skipped when they surface (lazy deletion).
    _deadlines: list[tuple[float, int, GroupKey]] = attrs.field(factory=list)
    # (last_sent, sequence, key), for forgetting idle groups.
    _sent: list[tuple[float, int, GroupKey]] = attrs.field(factory=list)
    # Groups whose due time had passed when an alert for them arrived (the dispatcher had
    # not popped them yet): closed then, so the newcomer cannot slip into them.
    _closed: list[Group] = attrs.field(factory=list)
    _seq: int = 0
    _waiting_alerts: int = 0  # alerts held, closed groups' included
    _waiting_groups: int = 0  # groups holding alerts, closed ones included

    def statistics(self) -> GroupingStatistics:
        return GroupingStatistics(
            groups_waiting=self._waiting_groups,
            alerts_waiting=self._waiting_alerts,
            groups_remembered=len(self._groups),
        )

    def due_at(self, alert: Alert, now: float) -> float:
        """When ``alert`` would go out if it arrived at ``now`` (nothing changes)."""
        state = self._groups.get(group_key(alert))
        if state is None:
            return now + self.group_wait
        if state.alerts and now < state.due:
            return state.due
        last = state.due if state.alerts else state.last_sent
        if last is None or now - last >= self.group_interval:
            return now + self.group_wait
        return last + self.group_interval

    def add(self, alert: Alert, now: float) -> None:
        """``alert`` arrived at ``now`` (see the module docstring for where it goes)."""
        key = group_key(alert)
        state = self._groups.get(key)
        if state is None:
            state = self._groups[key] = _State()
        elif state.alerts and now >= state.due:
            self._closed.append(self._close(key, state))
        if not state.alerts:
            self._schedule(key, state, self.due_at(alert, now))
            self._waiting_groups += 1
        state.alerts.append(alert)
        self._waiting_alerts += 1

    def restore(self, alerts: Iterable[Alert], now: float) -> None:
        """Alerts a stopped dispatcher held: each group's go out together, ``group_wait``
        from ``now`` (their arrival times are not kept, and a restart is no reason to split
        what was waiting together)."""
        for alert in alerts:
            key = group_key(alert)
            state = self._groups.setdefault(key, _State())
            if not state.alerts:
                self._schedule(key, state, now + self.group_wait)
                self._waiting_groups += 1
            state.alerts.append(alert)
            self._waiting_alerts += 1

    def mark_sent(self, alert: Alert, now: float) -> None:
        """Record that ``alert`` went out alone at ``now`` without passing through ``add``
        (only when ``due_at(alert, now) <= now``): its group's next alerts wait out
        ``group_interval``."""
        key = group_key(alert)
        state = self._groups.get(key)
        if state is not None and state.alerts:
            # Due long enough ago that the newcomer opens a group of its own: the waiting
            # alerts still go out, as their own group, at their due time.
            self._closed.append(self._close(key, state))
        self._groups[key] = _State(last_sent=now)
        self._remember_sent(now, key)
        self._forget_idle(now)

    def next_deadline(self) -> float | None:
        if self._closed:
            return min(g.due for g in self._closed)
        heap = self._deadlines
        while heap and self._valid(heap[0][0], heap[0][2]) is None:
            heapq.heappop(heap)
        return heap[0][0] if heap else None

    def pop_due(self, now: float) -> list[Group]:
        """Groups whose due time has come, emptied, soonest due first; forgets groups idle
        for an interval."""
        due, self._closed = self._closed, []
        heap = self._deadlines
        while heap and heap[0][0] <= now:
            at, _, key = heapq.heappop(heap)
            state = self._valid(at, key)
            if state is not None:
                due.append(self._close(key, state))
        self._forget_idle(now)
        self._waiting_alerts -= sum(len(g.alerts) for g in due)
        self._waiting_groups -= len(due)
        due.sort(key=lambda g: g.due)  # stable: groups due together keep their order
        return due

    def pop_all(self, now: float) -> list[Group]:
        """Every group with alerts, due or not (for shutdown), sent at ``now``."""
        for key, state in self._groups.items():
            if state.alerts and state.due > now:
                self._schedule(key, state, now)
        return self.pop_due(now)

    # -- internals ----------------------------------------------------------------------------

    def _schedule(self, key: GroupKey, state: _State, due: float) -> None:
        state.due = due
        self._seq += 1
        heapq.heappush(self._deadlines, (due, self._seq, key))

    def _close(self, key: GroupKey, state: _State) -> Group:
        group = Group(rule=key[0], key=key[1], alerts=tuple(state.alerts), due=state.due)
        state.alerts = []
        state.last_sent = state.due
        self._remember_sent(state.due, key)
        return group

    def _remember_sent(self, at: float, key: GroupKey) -> None:
        self._seq += 1
        heapq.heappush(self._sent, (at, self._seq, key))

    def _valid(self, due: float, key: GroupKey) -> _State | None:
        state = self._groups.get(key)
        if state is None or not state.alerts or state.due != due:
            return None
        return state

    def _forget_idle(self, now: float) -> None:
        sent = self._sent
        while sent and now - sent[0][0] >= self.group_interval:
            at, _, key = heapq.heappop(sent)
            state = self._groups.get(key)
            if state is not None and not state.alerts and state.last_sent == at:
                del self._groups[key]
