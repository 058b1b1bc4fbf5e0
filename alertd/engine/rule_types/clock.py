"""The one clock reference of an engine's evaluators: persisted times are Unix epoch seconds,
timers trio-clock seconds, converted through the pair the engine takes at start."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import attrs


@attrs.define
class ClockReference:
    """The one (trio clock, Unix time) pair the engine fixes at start, and the wall clock:
    converts trio-clock deadlines to the epoch seconds that are persisted, and back."""

    wall: Callable[[], datetime]
    mono_ref: float = 0.0
    epoch_ref: float = 0.0

    def anchor(self, mono: float) -> None:
        """Trio time ``mono`` is now (the wall clock's reading)."""
        self.mono_ref = mono
        self.epoch_ref = self.wall().timestamp()

    def epoch(self, mono: float) -> float:
        return self.epoch_ref + (mono - self.mono_ref)

    def mono(self, epoch: float) -> float:
        return self.mono_ref + (epoch - self.epoch_ref)

    def wall_at(self, mono: float) -> datetime:
        return datetime.fromtimestamp(self.epoch(mono), UTC)
