"""Settling the heap once alertd run is up: what start-up built is frozen out of the cyclic
collector's way, and garbage made afterwards is still collected."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator

import pytest

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
