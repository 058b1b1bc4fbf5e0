"""Deadlines on the trio clock for all rules: one heap, with cancellation by forgetting an
entry (the heap skips entries no longer live), so re-arming a key's timer is O(log n)."""

from __future__ import annotations

import heapq
import itertools
from typing import Protocol


class TimerOwner(Protocol):
    def on_timer(self, key: str, tag: str, deadline: float, now: float) -> object: ...


class TimerQueue:
    def __init__(self) -> None:
        self._heap: list[tuple[float, int]] = []
        self._live: dict[int, tuple[TimerOwner, str, str]] = {}
        self._seq = itertools.count()

    def __len__(self) -> int:
        return len(self._live)

    def schedule(self, deadline: float, owner: TimerOwner, key: str, tag: str) -> int:
        seq = next(self._seq)
        self._live[seq] = (owner, key, tag)
        heapq.heappush(self._heap, (deadline, seq))
        return seq

    def cancel(self, seq: int) -> None:
        self._live.pop(seq, None)

    def next_deadline(self) -> float | None:
        heap = self._heap
        while heap and heap[0][1] not in self._live:
            heapq.heappop(heap)
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
