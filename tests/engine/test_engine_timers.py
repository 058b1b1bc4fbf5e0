"""The shared timer heap: cancelled timers do not pile up."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

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


def _fire_all(queue: TimerQueue, until: float) -> list[tuple[float, str, str]]:
    fired = []
    while (due := queue.pop_due(until)) is not None:
        fired.append((due[0], due[2], due[3]))
    return fired


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(0, 7), st.integers(0, 40), st.sampled_from(["arm", "cancel"])),
        max_size=60,
    )
)
def test_rescheduling_fires_as_cancelling_and_scheduling_again(steps: list) -> None:
    """Moving a timer with ``reschedule`` (which defers a later deadline without touching the
    heap) fires exactly the timers, deadlines and order that cancelling it and scheduling it
    anew does, ties included."""
    owner = Owner()
    lazy, eager = TimerQueue(), TimerQueue()
    lazy_seq: dict[int, int] = {}
    eager_seq: dict[int, int] = {}
    for key, at, what in steps:
        if what == "cancel":
            if key in lazy_seq:
                lazy.cancel(lazy_seq.pop(key))
                eager.cancel(eager_seq.pop(key))
            continue
        if key in lazy_seq:
            lazy_seq[key] = lazy.reschedule(lazy_seq[key], float(at))
            eager.cancel(eager_seq[key])
        else:
            lazy_seq[key] = lazy.schedule(float(at), owner, f"k{key}", "t")
        eager_seq[key] = eager.schedule(float(at), owner, f"k{key}", "t")
        assert lazy.next_deadline() == eager.next_deadline()
        assert len(lazy) == len(eager)
    assert _fire_all(lazy, 20.0) == _fire_all(eager, 20.0)
    assert _fire_all(lazy, 100.0) == _fire_all(eager, 100.0)


def test_a_timer_pushed_later_again_and_again_keeps_one_heap_entry() -> None:
    """An absence timer moved on by every event (100,000 times) holds one heap entry and
    fires once, at its last deadline."""
    queue = TimerQueue()
    seq = queue.schedule(300.0, Owner(), "acct", "silent")
    for i in range(100_000):
        seq = queue.reschedule(seq, 300.0 + i * 0.01)
    assert queue.heap_size() == 1
    assert _fire_all(queue, 1e9) == [(300.0 + 99_999 * 0.01, "acct", "silent")]
