"""Per-channel rate limits ("20/1m": at most 20 messages a minute), on the trio clock."""

from __future__ import annotations

from collections import deque

import attrs

from alertd.config.values import parse_rate


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
