"""Wall time for what is stored and what people read, derived from the trio clock.

Outbox times (``created``, ``next_attempt``) and silence expiry must survive a restart, so
they are Unix seconds. Timers, though, must follow ``trio.current_time()`` so that
``autojump_clock`` can drive hours of retries in milliseconds (DESIGN invariant 3). ``wall``
squares the two: Unix time anchored at the first call in a trio run, then advanced by the
trio clock.

The system clock can be stepped under a running daemon (NTP syncing after boot, an admin's
``date -s``). So at most every ``RECHECK`` seconds of trio time ``wall`` compares itself with
``time.time()`` and re-anchors when they differ by more than ``MAX_DRIFT``; otherwise quiet
hours, outbox times and silences added from the command line (which reads ``time.time()``)
would stay off by the step until a restart.

It re-anchors only while trio's clock is the real one: that is, when ``time.monotonic()``
advanced as much as the trio clock since the last check. Under a ``MockClock`` (tests, virtual
time) the trio clock jumps ahead of real time, the comparison with ``time.time()`` means
nothing, and ``wall`` keeps following the trio clock exactly. Measuring rather than asking
``isinstance(clock, MockClock)`` also covers any other virtual clock, and a mock clock that
happens to run at real speed is harmless either way (its wall does not drift).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime

import attrs
import trio

log = logging.getLogger(__name__)

Wall = Callable[[], float]  # returns Unix seconds

RECHECK = 30.0  # trio seconds between comparisons with the system clock
MAX_DRIFT = 2.0  # seconds of disagreement with time.time() that count as a clock step
REAL_TOLERANCE = 1.0  # seconds trio and monotonic time may disagree and still be one clock


@attrs.define
class _Anchor:
    offset: float  # Unix seconds minus trio seconds
    checked: float  # trio time of the last comparison
    monotonic: float  # time.monotonic() minus trio seconds, at the last comparison
    fixed: bool = False  # set by anchor_wall: never re-anchored to the system clock


_ANCHOR: trio.lowlevel.RunVar[_Anchor] = trio.lowlevel.RunVar("alertd_wall_anchor")


def wall() -> float:
    """Unix seconds that advance with the trio clock (the same for every caller in a run),
    following the system clock when it is stepped (see the module docstring)."""
    now = trio.current_time()
    try:
        anchor = _ANCHOR.get()
    except LookupError:
        anchor = _Anchor(offset=time.time() - now, checked=now, monotonic=time.monotonic() - now)
        _ANCHOR.set(anchor)
    else:
        if not anchor.fixed and now - anchor.checked >= RECHECK:
            _recheck(anchor, now)
    return anchor.offset + now


def anchor_wall(unix: float) -> None:
    """Fix this run's wall time: ``wall()`` is ``unix`` now and advances with the trio clock
    from here, never re-anchored to the system clock. For a run on virtual time (``alertd
    replay`` starts its clock at a capture's first record)."""
    now = trio.current_time()
    _ANCHOR.set(_Anchor(offset=unix - now, checked=now, monotonic=0.0, fixed=True))


def wall_datetime() -> datetime:
    """``wall()`` as a timezone-aware UTC datetime."""
    return datetime.fromtimestamp(wall(), UTC)


def utc_now() -> datetime:
    """The system clock's now, timezone-aware UTC (outside a trio run, or where wall time
    must not follow a virtual clock)."""
    return datetime.now(UTC)


def _recheck(anchor: _Anchor, now: float) -> None:
    monotonic = time.monotonic() - now
    trio_is_real = abs(monotonic - anchor.monotonic) <= REAL_TOLERANCE
    anchor.checked = now
    anchor.monotonic = monotonic
    if not trio_is_real:
        return
    unix = time.time()
    step = unix - (anchor.offset + now)
    if abs(step) > MAX_DRIFT:
        log.warning("clock.stepped seconds=%+.1f: wall time re-anchored to the system clock", step)
        anchor.offset = unix - now
