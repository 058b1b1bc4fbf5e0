"""``Keepalive``: one task that pings every watched connection of the process.

A websocket ping every ``interval`` after the last pong; no pong within ``timeout`` of a ping
means the connection is half-open (the peer neither sends nor answers) and its ``on_dead``
is called. This was one heartbeat task per session, sleeping between pings: with 5,000
accounts that is 5,000 parked tasks, two trio deadlines a ping (the sleep and the pong's
timeout) and a task switch on each; it was the largest part of an idle daemon's CPU. Here
the due times are rounded up to ``TICK`` and the connections due at a tick sit in one list
(a timer wheel: a heap of tick numbers, a list per tick), so that any number of connections
wake the task at most ten times a second and scheduling a ping allocates nothing the garbage
collector would carry into its oldest generation (a heap entry per ping did, and full
collections over 5,000 accounts' objects are slow). A ping in flight is a short task
(trio-websocket's ``ping`` returns at the pong) that ends with its pong, or is cancelled when
the connection stops being watched. A peer that stops answering is noticed at most ``TICK``
later than with a timer of its own.
"""

from __future__ import annotations

import contextlib
import heapq
import math
from collections.abc import Callable, Iterator

import attrs
import trio

from alertd.sources.transport import Connection, ConnectionLost

TICK = 0.1  # seconds: pings and pong deadlines are rounded up to this grid


def _tick_at(at: float) -> int:
    """The first tick at or after trio time ``at``."""
    return math.ceil(at / TICK)


@attrs.define(eq=False)
class _Watch:
    """One watched connection. ``due`` is the tick at which the task next looks at it: to
    send a ping (none in flight) or to give up on the pong (one in flight, since
    ``sent_at``)."""

    conn: Connection
    interval: float
    timeout: float
    on_dead: Callable[[str], None]
    due: int = 0
    sent_at: float | None = None
    watched: bool = True
    ping: trio.CancelScope | None = None  # the ping in flight


@attrs.frozen(kw_only=True)
class KeepaliveStatistics:
    """The keepalive at one moment."""

    watched: int  # connections being pinged
    in_flight: int  # pings waiting for their pong
    pings: int  # pings sent, ever
    dead: int  # connections given up (no pong in time), ever


@attrs.define(eq=False)
class Keepalive:
    """Pings the connections it is told to ``watch``, from one task: ``run``.

    ``watch`` may be used only while ``run`` runs. On cancellation every ping in flight is
    cancelled (their connections are the sessions' to close). An error in a watcher's
    ``on_dead`` propagates out of ``run``: it must only note the reason and cancel."""

    _wheel: dict[int, list[_Watch]] = attrs.field(factory=dict)  # by tick
    _ticks: list[int] = attrs.field(factory=list)  # a heap of the wheel's ticks
    _nursery: trio.Nursery | None = None
    _wake: trio.Event = attrs.field(factory=trio.Event)
    _sleeping_until: float = math.inf
    _watched: int = 0
    _in_flight: int = 0
    _pings: int = 0
    _dead: int = 0

    def statistics(self) -> KeepaliveStatistics:
        return KeepaliveStatistics(
            watched=self._watched, in_flight=self._in_flight, pings=self._pings, dead=self._dead
        )

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        async with trio.open_nursery() as nursery:  # the pings in flight
            self._nursery = nursery
            try:
                task_status.started()
                while True:
                    self._look(trio.current_time())
                    self._wake = trio.Event()
                    self._sleeping_until = self._ticks[0] * TICK if self._ticks else math.inf
                    with trio.move_on_at(self._sleeping_until):
                        await self._wake.wait()
            finally:
                self._nursery = None
                nursery.cancel_scope.cancel()

    @contextlib.contextmanager
    def watch(
        self,
        conn: Connection,
        *,
        interval: float,
        timeout: float,
        on_dead: Callable[[str], None],
    ) -> Iterator[None]:
        """Ping ``conn`` every ``interval`` while inside; ``on_dead(reason)`` once its peer
        leaves a ping unanswered for ``timeout``. Leaving stops the pinging at once."""
        if self._nursery is None:
            raise RuntimeError("Keepalive.watch() called while Keepalive.run() is not running")
        watch = _Watch(conn, interval, timeout, on_dead)
        self._watched += 1
        self._schedule(watch, trio.current_time() + interval)
        try:
            yield
        finally:
            self._unwatch(watch)

    def _unwatch(self, watch: _Watch) -> None:
        if watch.watched:
            watch.watched = False
            self._watched -= 1
            if watch.ping is not None:
                watch.ping.cancel()

    def _schedule(self, watch: _Watch, at: float) -> None:
        tick = watch.due = _tick_at(at)
        due = self._wheel.get(tick)
        if due is None:
            due = self._wheel[tick] = []
            heapq.heappush(self._ticks, tick)
        due.append(watch)
        if tick * TICK < self._sleeping_until:
            self._wake.set()

    def _look(self, now: float) -> None:
        """Ping what is due; give up on what missed its pong. Watches left behind by a
        reschedule (their ``due`` is no longer this tick) are dropped as their tick comes."""
        while self._ticks and self._ticks[0] * TICK <= now:
            tick = heapq.heappop(self._ticks)
            for watch in self._wheel.pop(tick):
                if watch.watched and watch.due == tick:
                    self._due(watch, now)

    def _due(self, watch: _Watch, now: float) -> None:
        if watch.sent_at is not None:  # a ping in flight since, unanswered
            self._dead += 1
            self._unwatch(watch)
            watch.on_dead(f"no pong within {watch.timeout:g}s (connection half-open)")
            return
        assert self._nursery is not None
        watch.sent_at = now
        watch.ping = trio.CancelScope()
        self._pings += 1
        self._in_flight += 1
        self._nursery.start_soon(self._ping, watch, watch.ping)
        self._schedule(watch, now + watch.timeout)

    async def _ping(self, watch: _Watch, scope: trio.CancelScope) -> None:
        try:
            with scope:
                await watch.conn.ping()
                # the pong: the next ping one interval from now
                watch.sent_at = watch.ping = None
                if watch.watched:
                    self._schedule(watch, trio.current_time() + watch.interval)
        except ConnectionLost:
            pass  # the session's reader hears of it too, and stops watching
        finally:
            self._in_flight -= 1
