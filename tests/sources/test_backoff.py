"""Reconnect backoff: capped exponential ceiling, full jitter, reset only after stability."""

from __future__ import annotations

import random

from alertd.sources.backoff import Backoff


def make(**kw: float) -> Backoff:
    params = {"initial": 1.0, "maximum": 60.0, "stable_after": 30.0} | kw
    return Backoff(rng=random.Random(7), **params)


def test_ceiling_doubles_until_the_cap() -> None:
    """The ceiling of successive delays goes 1, 2, 4, ... and stops at ``maximum``."""
    b = make()
    ceilings = []
    for _ in range(9):
        ceilings.append(b.ceiling())
        b.next_delay()
    assert ceilings == [1, 2, 4, 8, 16, 32, 60, 60, 60]


def test_delays_are_full_jitter_below_the_ceiling() -> None:
    """Each delay is drawn anywhere between 0 and the ceiling, not clustered at it."""
    b = make(maximum=10.0)
    b.attempt = 20  # at the cap
    delays = [b.next_delay() for _ in range(2000)]
    assert all(0.0 <= d <= 10.0 for d in delays)
    assert min(delays) < 1.0
    assert max(delays) > 9.0


def test_huge_attempt_count_does_not_overflow() -> None:
    """After thousands of failures the delay is still the cap, not an OverflowError."""
    b = make()
    b.attempt = 5000
    assert b.ceiling() == 60.0
    assert 0.0 <= b.next_delay() <= 60.0


def test_short_lived_connection_keeps_the_backoff() -> None:
    """A connection that drops before ``stable_after`` does not reset the delay."""
    b = make()
    for _ in range(4):
        b.next_delay()
    b.connected(100.0)
    b.disconnected(129.9)
    assert b.ceiling() == 16.0


def test_stable_connection_resets_the_backoff() -> None:
    """A connection that stayed up ``stable_after`` seconds starts again from ``initial``."""
    b = make()
    for _ in range(4):
        b.next_delay()
    b.connected(100.0)
    b.disconnected(130.0)
    assert b.ceiling() == 1.0


def test_failed_attempt_without_connection_never_resets() -> None:
    """A disconnect without a preceding connect (a failed attempt) changes nothing."""
    b = make()
    b.next_delay()
    b.next_delay()
    b.disconnected(10_000.0)
    assert b.ceiling() == 4.0
