"""Settling the heap once alertd run is up: what start-up built is frozen out of the cyclic
collector's way, and garbage made afterwards is still collected."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator

import pytest
import trio

from alertd.daemon import heap


class Node:
    """An object in a reference cycle: only the cyclic collector frees it."""

    def __init__(self) -> None:
        self.me = self


@pytest.fixture
def unfrozen() -> Iterator[None]:
    yield
    gc.unfreeze()  # the rest of the test session collects as before


def test_what_lives_at_settle_is_frozen_and_later_garbage_is_still_collected(
    unfrozen: None,
) -> None:
    """After settle, objects alive then are frozen (not walked), yet a cycle made and
    dropped afterwards is freed by the next collection, as is garbage made before it."""
    before = Node()
    gone_before = weakref.ref(before)
    del before  # garbage already when settle runs: collected, not frozen
    kept = Node()
    frozen = heap.settle()
    assert frozen == gc.get_freeze_count() > 0
    assert gone_before() is None
    later = Node()
    gone_later = weakref.ref(later)
    del later
    gc.collect()
    assert gone_later() is None
    assert kept.me is kept


async def test_what_lives_on_after_start_up_is_settled_too(unfrozen: None) -> None:
    """Objects made after the first settle (accounts connecting) are frozen by the next
    settles of keep_settled, which ends as soon as the daemon has stopped."""
    heap.settle()
    first = gc.get_freeze_count()
    made_after = [Node() for _ in range(1000)]
    stopped = trio.Event()
    with trio.fail_after(5):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(heap.keep_settled, stopped, (0.05, 0.1, 3600.0))
            await trio.sleep(0.2)
            assert gc.get_freeze_count() >= first + len(made_after)
            stopped.set()  # the hour-long last wait ends with the daemon
    assert made_after[0].me is made_after[0]
