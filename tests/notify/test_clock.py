"""Wall time: follows the trio clock, and the system clock when that is stepped under a
running daemon (NTP), except under a mock clock."""

from __future__ import annotations

import time

import pytest
import trio
import trio.testing

from alertd import clock as wallclock

STEP = 3 * 3600.0  # NTP steps the clock forward 3 h after the daemon started


async def test_wall_follows_a_system_clock_step(monkeypatch: pytest.MonkeyPatch) -> None:
    """After the system clock is stepped 3 h, wall() agrees with time.time() again at the
    next check (no restart needed)."""
    monkeypatch.setattr(
        wallclock, "RECHECK", 0.05, raising=False
    )  # real seconds here: keep the test short
    before = wallclock.wall()
    assert abs(before - time.time()) < 1
    real = time.time
    monkeypatch.setattr(time, "time", lambda: real() + STEP)
    with trio.fail_after(5):
        await trio.sleep(0.1)
    assert abs(wallclock.wall() - time.time()) < 1


async def test_mock_clock_wall_follows_the_trio_clock_only(
    monkeypatch: pytest.MonkeyPatch, clock: trio.testing.MockClock
) -> None:
    """Under a mock clock wall() advances exactly with virtual time: an hour of autojump is
    not mistaken for a step of the system clock, nor is a real step followed."""
    start = wallclock.wall()
    real = time.time
    monkeypatch.setattr(time, "time", lambda: real() + STEP)
    await trio.sleep(3600)
    assert wallclock.wall() == pytest.approx(start + 3600, abs=1e-6)
