"""The hand-off from the outbox to delivery: rows just committed, kept in memory for the
delivery worker of their URL, so that a fresh alert costs one SQLite commit on its way out,
not a commit and a read (the latency of bench/README.md's 1,000 frames/s run).

It is bounded: at most ``capacity`` rows wait per URL. Past that the URL's inbox overflows:
it drops what it holds and keeps nothing more until its worker next takes, and the worker,
told so, reads the table instead, which has every row (a row is handed over only after its
transaction committed, so the table is never behind the hand-off: invariant 2). Capacity 0
hands no rows over at all (every row is read back), and the same workers still run.

It also carries the wake-ups: a worker waits on its URL's ``arrival`` event, delivery's
supervisor on ``unserved_arrival`` for rows of a URL no worker has open yet. A worker that
sends what is handed over next, before anything else and at once (it is clean and its URL
has no rate limit), says so (``ready``); the outbox then writes the next row for it handed
over in the commit that queues it (``claim``), so a fresh alert's way out needs no write
before its send.

Created where the stages are wired (the daemon) and given to the ``Outbox``, which puts rows
in; delivery takes them out (``Outbox.handoff``). Owned by one trio run; no locking.
"""

from __future__ import annotations

from collections.abc import Sequence

import attrs
import trio

from alertd.store.notifications import OutboxRow

Target = tuple[str, int]  # (channel name, URL index)

# Rows kept per URL for its worker: far more than a second of the 10,000 frames/s flood
# brings one URL, and little memory (a row is a message).
HANDOFF_CAPACITY = 1000


@attrs.frozen(kw_only=True)
class HandoffStatistics:
    capacity: int  # rows kept per URL before its worker reads the table instead
    open: int  # URLs whose worker takes rows from here
    waiting: int  # rows handed over and not yet taken
    handed: int  # rows handed over since start (not read back from the table)
    overflows: int  # times a URL's inbox filled up (its worker then read the table)
    claimed: int  # rows queued already written handed over (no write before their send)


@attrs.define
class _Inbox:
    rows: list[OutboxRow] | None = attrs.field(factory=list)  # None: overflowed
    arrival: trio.Event = attrs.field(factory=trio.Event)
    ready: bool = False  # its worker sends the next row handed over first, at once
    claimed: bool = False  # the next row is on its way, written handed over


@attrs.define
class Handoff:
    """See the module docstring."""

    capacity: int = HANDOFF_CAPACITY
    _inboxes: dict[Target, _Inbox] = attrs.field(factory=dict, init=False)
    _unserved: set[Target] = attrs.field(factory=set, init=False)
    _unserved_arrival: trio.Event = attrs.field(factory=trio.Event, init=False)
    _handed: int = attrs.field(default=0, init=False)
    _overflows: int = attrs.field(default=0, init=False)
    _claimed: int = attrs.field(default=0, init=False)

    # -- the outbox's side --------------------------------------------------------------------

    def put(self, rows: Sequence[OutboxRow]) -> None:
        """Hand over rows that are committed (never before: see the module docstring), in
        the order they were queued."""
        for row in rows:
            target = (row.channel, row.url_index)
            inbox = self._inboxes.get(target)
            if inbox is None:
                self._unserved.add(target)
                self._unserved_arrival.set()
                continue
            kept = inbox.rows
            if kept is not None:
                if len(kept) < self.capacity:
                    kept.append(row)
                    self._handed += 1
                else:
                    inbox.rows = None
                    self._overflows += 1
            inbox.arrival.set()

    def wake(self, targets: set[Target]) -> None:
        """Send the workers of ``targets`` back to the table: it has rows for them that were
        never handed over here (another replica's, whose claims ran out)."""
        for target in targets:
            inbox = self._inboxes.get(target)
            if inbox is None:
                self._unserved.add(target)
                self._unserved_arrival.set()
                continue
            inbox.rows = None  # as after an overflow: the worker reads the table
            inbox.arrival.set()

    # -- delivery's side ----------------------------------------------------------------------

    def open(self, target: Target) -> None:
        """Keep the rows committed for ``target`` from now on, for ``take``."""
        self._inboxes[target] = _Inbox()
        self._unserved.discard(target)

    def close(self, target: Target) -> None:
        self._inboxes.pop(target, None)

    def take(self, target: Target) -> list[OutboxRow] | None:
        """The rows handed over for an open ``target`` since the last call, in order; None
        when some were not kept (overflow: read the table instead)."""
        inbox = self._inboxes[target]
        rows, inbox.rows = inbox.rows, []
        inbox.claimed = False
        return rows

    def ready(self, target: Target, ready: bool) -> None:
        """Whether the worker of the open ``target`` sends the next row handed over before
        anything else, at once (clean, due rows, no rate limit in its way)."""
        self._inboxes[target].ready = ready

    def claim(self, target: Target) -> bool:
        """Whether the next row for ``target`` is the next its worker sends, at once, so it
        may be written handed over already (one row a ``take``)."""
        inbox = self._inboxes.get(target)
        if inbox is None or not inbox.ready or inbox.claimed or inbox.rows != []:
            return False
        inbox.claimed = True
        self._claimed += 1
        return True

    def arrival(self, target: Target) -> trio.Event:
        """Set when rows for the open ``target`` are next handed over. Take it *before*
        ``take`` or a read of the table, then wait on it, so rows committed in between are
        not missed."""
        inbox = self._inboxes[target]
        if inbox.arrival.is_set():
            inbox.arrival = trio.Event()
        return inbox.arrival

    def unserved(self) -> set[Target]:
        """URLs that got rows while no worker had them open, since the last call."""
        targets, self._unserved = self._unserved, set()
        return targets

    def unserved_arrival(self) -> trio.Event:
        """Set when rows next arrive for a URL no worker has open (see ``arrival``)."""
        if self._unserved_arrival.is_set():
            self._unserved_arrival = trio.Event()
        return self._unserved_arrival

    def statistics(self) -> HandoffStatistics:
        return HandoffStatistics(
            capacity=self.capacity,
            open=len(self._inboxes),
            waiting=sum(len(i.rows or ()) for i in self._inboxes.values()),
            handed=self._handed,
            overflows=self._overflows,
            claimed=self._claimed,
        )
