"""Deadlines on the trio clock for all rules: one heap, with cancellation by forgetting an
entry (the heap skips entries no longer live), so re-arming a key's timer is O(log n).

A forgotten entry stays in the heap until its deadline comes up, which for an order timeout
of a day is a day: an account closing two orders a second would hold ~20 MB of dead entries.
So the heap is rebuilt from the live entries once dead ones outnumber them (as trio does for
its own deadlines): amortised O(1) a cancel, and memory bounded by the live timers."""

from __future__ import annotations

import heapq
import itertools
from typing import Protocol

COMPACT_SLACK = 1024  # dead entries tolerated beyond the live count before a rebuild


class TimerOwner(Protocol):
    def on_timer(self, key: str, tag: str, deadline: float, now: float) -> object: ...


class TimerQueue:
    def __init__(self) -> None:
        self._heap: list[tuple[float, int]] = []
        self._live: dict[int, tuple[TimerOwner, str, str]] = {}
        self._seq = itertools.count()
        self._dead = 0  # cancelled entries still in the heap

    def __len__(self) -> int:
        return len(self._live)

    def schedule(self, deadline: float, owner: TimerOwner, key: str, tag: str) -> int:
        seq = next(self._seq)
        self._live[seq] = (owner, key, tag)
        heapq.heappush(self._heap, (deadline, seq))
        return seq

    def cancel(self, seq: int) -> None:
        if self._live.pop(seq, None) is not None:
            self._dead += 1
            if self._dead > len(self._live) + COMPACT_SLACK:
                self._compact()

    def _compact(self) -> None:
        self._heap = [entry for entry in self._heap if entry[1] in self._live]
        heapq.heapify(self._heap)
        self._dead = 0

    def heap_size(self) -> int:
        """Entries in the heap, dead ones included (for tests of the bound)."""
        return len(self._heap)

    def next_deadline(self) -> float | None:
        heap = self._heap
        while heap and heap[0][1] not in self._live:
            heapq.heappop(heap)
            self._dead -= 1
        return heap[0][0] if heap else None

    def pop_due(
        self, now: float, *, strict: bool = False
    ) -> tuple[float, TimerOwner, str, str] | None:
        """The earliest live timer due at ``now`` (before it when ``strict``), removed."""
        deadline = self.next_deadline()
        if deadline is None or deadline > now or (strict and deadline == now):
            return None
        _, seq = heapq.heappop(self._heap)
        owner, key, tag = self._live.pop(seq)
        return deadline, owner, key, tag
