"""The shared timer heap: cancelled timers do not pile up."""

from __future__ import annotations

from alertd.engine.timers import COMPACT_SLACK, TimerQueue


class Owner:
    def on_timer(self, key: str, tag: str, deadline: float, now: float) -> object:
        return None


def test_cancelled_timers_far_in_the_future_do_not_accumulate() -> None:
    """Arming and cancelling a day-long timer per order, 100,000 times, keeps the heap bounded
    by the live timers plus a fixed slack (an order timeout of "24h" on a busy account)."""
    queue = TimerQueue()
    owner = Owner()
    live = [queue.schedule(86_400.0 + i, owner, f"k{i}", "open") for i in range(10)]
    for i in range(100_000):
        queue.cancel(queue.schedule(86_400.0 + i, owner, f"o{i}", "open"))
    assert len(queue) == len(live)
    assert queue.heap_size() <= len(live) * 2 + COMPACT_SLACK + 1


def test_live_timers_still_fire_in_order_after_a_rebuild() -> None:
    """A rebuild of the heap keeps every live timer and their order."""
    queue = TimerQueue()
    owner = Owner()
    keep = {queue.schedule(float(100 - i), owner, f"k{i}", "t"): 100 - i for i in range(50)}
    for i in range(5_000):
        queue.cancel(queue.schedule(1_000.0 + i, owner, f"x{i}", "t"))
    fired = []
    while (due := queue.pop_due(10_000.0)) is not None:
        fired.append(due[0])
    assert fired == sorted(keep.values())
    assert queue.next_deadline() is None
