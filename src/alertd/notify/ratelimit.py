"""Per-channel rate limits ("20/1m": at most 20 messages a minute), on the trio clock."""

from __future__ import annotations

import re
from collections import deque

import attrs

_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_RATE = re.compile(r"^\s*(\d+)\s*/\s*(\d+(?:\.\d+)?)?\s*([smhd])\s*$")


def parse_rate(text: str) -> tuple[int, float]:
    """``"20/1m"`` -> ``(20, 60.0)``; ``"5/30s"``, ``"100/h"`` work too."""
    m = _RATE.match(text)
    if m is None or int(m.group(1)) < 1:
        raise ValueError(
            f'rate_limit {text!r} is not a rate: write COUNT/PERIOD, e.g. "20/1m" or "5/30s"'
        )
    period = float(m.group(2) or 1) * _UNITS[m.group(3)]
    if period <= 0:
        raise ValueError(f"rate_limit {text!r}: the period must be longer than zero")
    return int(m.group(1)), period


@attrs.define
class RateLimiter:
    """A sliding window: at most ``count`` sends within any ``window`` seconds."""

    count: int
    window: float
    _sent: deque[float] = attrs.field(factory=deque)

    @classmethod
    def parse(cls, text: str) -> RateLimiter:
        count, window = parse_rate(text)
        return cls(count, window)

    def _forget(self, now: float) -> None:
        while self._sent and self._sent[0] <= now - self.window:
            self._sent.popleft()

    def available(self, now: float) -> int:
        self._forget(now)
        return self.count - len(self._sent)

    def record(self, now: float) -> None:
        self._sent.append(now)

    def next_free(self, now: float) -> float:
        """When the next send is allowed (``now`` if it is)."""
        self._forget(now)
        if len(self._sent) < self.count:
            return now
        return self._sent[0] + self.window
