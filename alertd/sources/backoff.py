"""Reconnect delays: capped exponential backoff with full jitter.

Pure: the caller passes the times in (trio clock seconds), so tests need no clock at all.
Full jitter (a uniform draw between 0 and the capped exponential) spreads many clients that
lost the same server, which is why it is preferred to a fixed or "equal jitter" delay.
"""

from __future__ import annotations

import random

import attrs


@attrs.define
class Backoff:
    """The delay before the next connection attempt.

    ``next_delay()`` grows the ceiling ``initial * 2**attempt`` up to ``maximum`` and draws
    uniformly below it. The attempt count resets only when a connection that was up has stayed
    up for ``stable_after`` seconds: a server that accepts the handshake and then drops us at
    once must not get a reconnect storm.
    """

    initial: float
    maximum: float
    stable_after: float
    rng: random.Random = attrs.field(factory=random.Random)
    attempt: int = 0
    _up_since: float | None = None

    def ceiling(self) -> float:
        """The upper bound of the next draw."""
        # min() before the power would still overflow for a huge attempt count, so cap the
        # exponent: 2**62 times any sane initial is far past any maximum.
        return min(self.maximum, self.initial * 2.0 ** min(self.attempt, 62))

    def next_delay(self) -> float:
        """A delay for the next attempt, and count the attempt."""
        delay = self.rng.uniform(0.0, self.ceiling())
        self.attempt += 1
        return delay

    def connected(self, now: float) -> None:
        """The connection is up (handshake, login and subscribe done) at ``now``."""
        self._up_since = now

    def disconnected(self, now: float) -> None:
        """The connection ended at ``now``: reset only if it had been up long enough."""
        if self._up_since is not None and now - self._up_since >= self.stable_after:
            self.attempt = 0
        self._up_since = None
