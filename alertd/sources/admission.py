"""One limit on new connections per exchange endpoint, shared by every session of the process.

Each session already waits a jittered backoff between its own attempts, but that spreads the
attempts of one account, not of many: when an exchange restarts, a desk's 1,000 sessions all
lose it at once and all come back within their first backoff (over 800 attempts in one second
were measured). Exchanges limit new connections per IP address and ban clients that storm
them, so every attempt to an endpoint (``scheme://host:port``) first takes a token from that
endpoint's bucket: ``rate`` a second, ``burst`` at once. Startup goes through the same gate.

Waiting is first come, first served (``trio.Lock`` is fair), so a session whose attempt failed
queues behind every session still waiting, and none tries twice while others have not tried
once. Written here rather than taken from a library: trio has no token bucket, and the ones on
PyPI are asyncio's or thread-based.
"""

from __future__ import annotations

from urllib.parse import urlsplit

import attrs
import trio

from alertd.config.model import DaemonSettings

DEFAULT_RATE = 2.0  # new connections a second to one endpoint, sustained
DEFAULT_BURST = 10  # taken at once before the rate applies (a few accounts start at once)
_EPSILON = 1e-9


def endpoint_of(url: str) -> str:
    """``wss://api.example.com/ws?x=1`` -> ``wss://api.example.com:443``: what a limit counts
    against (one exchange server, whatever path or account)."""
    parts = urlsplit(url)
    default = 443 if parts.scheme == "wss" else 80
    return f"{parts.scheme}://{(parts.hostname or '').lower()}:{parts.port or default}"


@attrs.frozen(kw_only=True)
class AdmissionStatistics:
    """Per endpoint: attempts let through, and how many wait now."""

    admitted: dict[str, int]
    waiting: dict[str, int]


@attrs.define(eq=False)
class _Bucket:
    tokens: float
    updated: float
    lock: trio.Lock = attrs.field(factory=trio.Lock)
    admitted: int = 0
    waiting: int = 0


@attrs.define(eq=False)
class Admission:
    """The gate every connection attempt passes (``await admission.admit(url)``)."""

    rate: float = DEFAULT_RATE
    burst: int = DEFAULT_BURST
    _buckets: dict[str, _Bucket] = attrs.field(factory=dict)

    @classmethod
    def for_daemon(cls, daemon: DaemonSettings) -> Admission:
        """The process's one gate, as ``[daemon] connect_rate`` and ``connect_burst`` say."""
        return cls(rate=daemon.connect_rate, burst=daemon.connect_burst)

    def __attrs_post_init__(self) -> None:
        if self.rate <= 0 or self.burst < 1:
            raise ValueError("a connection limit needs rate > 0 and burst >= 1")

    def statistics(self) -> AdmissionStatistics:
        return AdmissionStatistics(
            admitted={e: b.admitted for e, b in self._buckets.items()},
            waiting={e: b.waiting for e, b in self._buckets.items() if b.waiting},
        )

    async def admit(self, url: str) -> None:
        """Return when an attempt to ``url``'s endpoint may start (at once, while tokens
        last). Cancellation while waiting takes no token."""
        endpoint = endpoint_of(url)
        bucket = self._buckets.get(endpoint)
        if bucket is None:
            bucket = _Bucket(tokens=float(self.burst), updated=trio.current_time())
            self._buckets[endpoint] = bucket
        bucket.waiting += 1
        try:
            async with bucket.lock:
                while True:
                    now = trio.current_time()
                    elapsed = now - bucket.updated
                    bucket.tokens = min(float(self.burst), bucket.tokens + elapsed * self.rate)
                    bucket.updated = now
                    # a token earned over a float interval may come out as 0.9999999999:
                    # without the tolerance the wait below would round to no time at all
                    if bucket.tokens >= 1.0 - _EPSILON:
                        bucket.tokens = max(0.0, bucket.tokens - 1.0)
                        bucket.admitted += 1
                        return
                    await trio.sleep((1.0 - bucket.tokens) / self.rate)
        finally:
            bucket.waiting -= 1
