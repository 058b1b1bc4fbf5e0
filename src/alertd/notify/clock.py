"""Wall time for what is stored and what people read, derived from the trio clock.

Outbox times (``created``, ``next_attempt``) and silence expiry must survive a restart, so
they are Unix seconds. Timers, though, must follow ``trio.current_time()`` so that
``autojump_clock`` can drive hours of retries in milliseconds (DESIGN invariant 3). ``wall``
squares the two: Unix time anchored once per trio run, then advanced by the trio clock.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import trio

Wall = Callable[[], float]  # returns Unix seconds

_OFFSET: trio.lowlevel.RunVar[float] = trio.lowlevel.RunVar("alertd_wall_offset")


def wall() -> float:
    """Unix seconds that advance with the trio clock (the same for every caller in a run)."""
    now = trio.current_time()
    try:
        offset = _OFFSET.get()
    except LookupError:
        offset = time.time() - now
        _OFFSET.set(offset)
    return offset + now
