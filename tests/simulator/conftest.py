"""A mock clock for scenario timings that jumps only when loopback traffic has settled."""

from __future__ import annotations

import pytest
import trio.testing


@pytest.fixture
def clock() -> trio.testing.MockClock:
    """Virtual time for scenario timings; waits 50 ms of real idleness before jumping."""
    return trio.testing.MockClock(autojump_threshold=0.05)
