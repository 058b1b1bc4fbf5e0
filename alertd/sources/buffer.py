"""One account's outgoing buffer between its websocket reader and the shared event channel.

The reader puts events without ever waiting (``put`` is synchronous), so a slow consumer can
never stall the socket (DESIGN.md invariant 1); the account's forwarder task takes them out
with ``get`` and waits on the bounded shared channel instead.

What happens when the consumer falls behind:

- ``book`` events are conflated per symbol: a newer book replaces the one still waiting, in
  its original place in the queue. Only the latest book matters, and the number of symbols
  bounds the space they take, so books never count against ``capacity``.
- every other event counts against ``capacity``. When full, new events are dropped, never
  silently, until the queue has drained to half its capacity: the drops are remembered per
  stream and become one ``stream.gap`` per stream (why ``overflow``, with the window of the
  dropped events' receive times, ``raw`` = ``{"dropped": N}``) ahead of the next accepted
  event, or as soon as the queue is empty.
- connection facts (``put(..., bounded=False)``) are always taken: there are few of them and
  losing a ``stream.disconnected`` would make alertd blind without saying so.
"""

from __future__ import annotations

import logging
from collections import deque
from datetime import datetime

import attrs
import trio

from alertd.events import Book, Event, StreamGap
from alertd.sources.streams import CONNECTION, stream_fact

log = logging.getLogger(__name__)


@attrs.define
class _BookSlot:
    """A place in the queue for the latest book of ``symbol`` (kept in ``_books``)."""

    symbol: str


@attrs.frozen
class _Free:
    """An event that does not count against capacity (connection facts, overflow gaps)."""

    event: Event


@attrs.define
class _Overflow:
    since: datetime
    until: datetime
    dropped: int = 0


@attrs.define
class OutBuffer:
    """Owned by one session: its reader calls ``put``, its forwarder awaits ``get``."""

    exchange: str
    account: str
    capacity: int
    conflated: int = 0  # books replaced by a newer one before they were forwarded
    dropped: int = 0  # events dropped on overflow (each one reported in a stream.gap)
    _queue: deque[Event | _BookSlot | _Free] = attrs.field(factory=deque)
    _books: dict[str, Book] = attrs.field(factory=dict)
    _counted: int = 0  # entries in _queue that count against capacity
    _overflow: dict[str, _Overflow] = attrs.field(factory=dict)
    _wakeup: trio.Event = attrs.field(factory=trio.Event)

    def __len__(self) -> int:
        return len(self._queue)

    @property
    def idle(self) -> bool:
        """Nothing queued and no drops waiting to be reported: an event handed on directly
        now would not overtake anything."""
        return not self._queue and not self._overflow

    def put(self, event: Event, *, stream: str = CONNECTION, bounded: bool = True) -> bool:
        """Queue ``event`` without waiting. ``stream`` names where it came from (for the gap
        report). Returns False when the event was dropped for lack of room."""
        if isinstance(event, Book):
            if event.symbol in self._books:
                self._books[event.symbol] = event
                self.conflated += 1
                return True
            self._books[event.symbol] = event
            self._queue.append(_BookSlot(event.symbol))
            self._wakeup.set()
            return True
        if not bounded:
            self._queue.append(_Free(event))
        else:
            # Once full, keep dropping until the queue is down to half: under a sustained
            # overload this gives one gap per episode instead of a gap every other event.
            draining = bool(self._overflow) and self._counted > self.capacity // 2
            if draining or self._counted >= self.capacity:
                self._drop(event, stream)
                return False
            self._flush_overflow()
            self._queue.append(event)
            self._counted += 1
        self._wakeup.set()
        return True

    async def get(self) -> Event:
        """The next event, waiting until there is one."""
        while not self._queue and not self._overflow:
            self._wakeup = trio.Event()
            await self._wakeup.wait()
        if not self._queue:
            # Everything queued before the drops is out: report them now rather than waiting
            # for the next event, which may be a long time coming on a quiet account stream.
            self._flush_overflow()
        entry = self._queue.popleft()
        if isinstance(entry, _BookSlot):
            return self._books.pop(entry.symbol)
        if isinstance(entry, _Free):
            return entry.event
        self._counted -= 1
        return entry

    def unget(self, event: Event) -> None:
        """Put an event ``get`` returned back at the front: its forwarder was cancelled before
        handing it on (the account is restarting; the next session's forwarder sends it).
        It no longer counts against capacity; a book with a newer one waiting is dropped."""
        if isinstance(event, Book):
            if event.symbol in self._books:
                self.conflated += 1
                return
            self._books[event.symbol] = event
            self._queue.appendleft(_BookSlot(event.symbol))
        else:
            self._queue.appendleft(_Free(event))
        self._wakeup.set()

    def _drop(self, event: Event, stream: str) -> None:
        self.dropped += 1
        window = self._overflow.get(stream)
        if window is None:
            log.warning(
                "stream.overflow account=%s stream=%s capacity=%d",
                self.account,
                stream,
                self.capacity,
            )
            window = self._overflow[stream] = _Overflow(since=event.received, until=event.received)
        window.until = max(window.until, event.received)
        window.since = min(window.since, event.received)
        window.dropped += 1

    def _flush_overflow(self) -> None:
        """Queue one ``stream.gap`` per stream that lost events; these do not count against
        capacity (the overflow already took their room)."""
        for stream, window in self._overflow.items():
            log.warning(
                "stream.gap account=%s stream=%s why=overflow dropped=%d",
                self.account,
                stream,
                window.dropped,
            )
            gap = stream_fact(
                StreamGap,
                exchange=self.exchange,
                account=self.account,
                at=window.until,
                stream=stream,
                since=window.since,
                until=window.until,
                why="overflow",
                raw={"dropped": window.dropped},
            )
            self._queue.append(_Free(gap))
        self._overflow.clear()
