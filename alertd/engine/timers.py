"""Deadlines on the trio clock for all rules: one heap, with cancellation by forgetting an
entry (the heap skips entries no longer live), so re-arming a key's timer is O(log n).

A forgotten entry stays in the heap until its deadline comes up, which for an order timeout
of a day is a day: an account closing two orders a second would hold ~20 MB of dead entries.
So the heap is rebuilt from the live entries once dead ones outnumber them (as trio does for
its own deadlines): amortised O(1) a cancel, and memory bounded by the live timers.

Most re-arming moves a deadline later (an absence timer on every event of its key, a stalled
order on every fill), so ``reschedule`` to a later time only notes the new deadline: the
entry, met at the top of the heap at its old time, is pushed back to the new one then. An
entry is ``(deadline, order, seq)``: ``order`` is taken afresh at every (re)scheduling, so
timers due at the same moment fire in the order they were last armed, as if each move had
been a cancel and a new schedule (tests/engine/test_engine_timers.py holds the two to
agreeing)."""

from __future__ import annotations

import heapq
import itertools
from typing import Protocol

COMPACT_SLACK = 1024  # dead entries tolerated beyond the live count before a rebuild


class TimerOwner(Protocol):
    def on_timer(self, key: str, tag: str, deadline: float, now: float) -> object: ...


class TimerQueue:
    def __init__(self) -> None:
        self._heap: list[tuple[float, int, int]] = []  # (deadline, order, seq)
        # Each live timer's (deadline, order, owner, key, tag): its heap entry's deadline and
        # order, or later ones (rescheduled).
        self._live: dict[int, tuple[float, int, TimerOwner, str, str]] = {}
        self._seq = itertools.count()
        self._dead = 0  # cancelled entries still in the heap

    def __len__(self) -> int:
        return len(self._live)

    def schedule(self, deadline: float, owner: TimerOwner, key: str, tag: str) -> int:
        seq = order = next(self._seq)
        self._live[seq] = (deadline, order, owner, key, tag)
        heapq.heappush(self._heap, (deadline, order, seq))
        return seq

    def reschedule(self, seq: int, deadline: float) -> int:
        """Move the live timer ``seq`` to ``deadline``; the handle to use from now on."""
        due, _, owner, key, tag = self._live[seq]
        if deadline < due:  # sooner: only a new entry can come up in time
            self.cancel(seq)
            return self.schedule(deadline, owner, key, tag)
        self._live[seq] = (deadline, next(self._seq), owner, key, tag)
        return seq

    def cancel(self, seq: int) -> None:
        if self._live.pop(seq, None) is not None:
            self._dead += 1
            if self._dead > len(self._live) + COMPACT_SLACK:
                self._compact()

    def _compact(self) -> None:
        live = self._live
        self._heap = [(*live[e[2]][:2], e[2]) for e in self._heap if e[2] in live]
        heapq.heapify(self._heap)
        self._dead = 0

    def heap_size(self) -> int:
        """Entries in the heap, dead ones included (for tests of the bound)."""
        return len(self._heap)

    def next_deadline(self) -> float | None:
        heap, live = self._heap, self._live
        while heap:
            deadline, order, seq = heap[0]
            timer = live.get(seq)
            if timer is None:  # cancelled
                heapq.heappop(heap)
                self._dead -= 1
            elif timer[1] != order:  # rescheduled later: to its place now
                heapq.heapreplace(heap, (timer[0], timer[1], seq))
            else:
                return deadline
        return None

    def pop_due(
        self, now: float, *, strict: bool = False
    ) -> tuple[float, TimerOwner, str, str] | None:
        """The earliest live timer due at ``now`` (before it when ``strict``), removed."""
        deadline = self.next_deadline()
        if deadline is None or deadline > now or (strict and deadline == now):
            return None
        _, _, seq = heapq.heappop(self._heap)
        _, _, owner, key, tag = self._live.pop(seq)
        return deadline, owner, key, tag
