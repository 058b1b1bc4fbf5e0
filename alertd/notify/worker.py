"""The worker loop: one task per (channel, URL), so a hanging service delays only its own
rows, neither other channels nor event intake (which never waits on delivery).

Each turn finds the URL's due rows and gives them to ``handle`` (one pass: send, digest,
expire, mute; ``Delivery``). The rows come from one of two places:

- the hand-off (``Handoff``): while the table holds no pending row for this URL but those
  handed over (the worker is *clean*), what is handed over is all there is, so it is sent
  without reading it back: a row is handed over only after it committed (invariant 2), and
  in the order rows were queued;
- the table: anything else (a retry, quiet hours, a rate limit, a row held back by muting,
  an overflowing hand-off, a restart) sends the worker back to reading due rows from the
  table, oldest first, until it is empty of pending rows again. What the hand-off holds
  meanwhile is in the table too, so it is dropped, not sent twice.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import attrs
import trio

from alertd import clock
from alertd.engine.probe import PipelineProbe
from alertd.store.handoff import Handoff, Target
from alertd.store.notifications import OutboxRow
from alertd.store.outbox import Outbox

DUE_BATCH = 1000  # rows read per pass for one URL; a bigger backlog goes out in more passes
IDLE_LOOK = 30.0  # seconds: a clean, idle worker reads the table this often all the same

# One pass over due rows of a URL, oldest first, at wall time ``now``: True when every one
# of them is finished, False when some are left pending.
Handle = Callable[[Target, list[OutboxRow], float], Awaitable[bool]]
# Whether a row for the URL, due now, goes out the moment its turn comes (no rate limit).
Immediate = Callable[[Target], bool]


@attrs.define(eq=False)
class ProbeDesk:
    """Where the heartbeat's pipeline probe meets the workers (engine/probe): a worker waiting
    for rows has seen it; a busy one (reading the table, sending) sees it when it next comes
    round its loop, so a send that never returns holds it. Two dict operations a turn."""

    _busy: dict[Target, list[PipelineProbe]] = attrs.field(factory=dict)  # probes waiting

    def visit(self, probe: PipelineProbe) -> set[Target]:
        for waiting in self._busy.values():
            waiting.append(probe)
        return set(self._busy)

    def turn(self, target: Target, *, busy: bool) -> None:
        """The worker of ``target`` came round (or, ``busy`` False, waits for rows or ends)."""
        waiting = self._busy.pop(target, None)
        if busy:
            self._busy[target] = []
        for probe in waiting or ():
            probe.seen(target)


async def serve_url(
    target: Target,
    *,
    outbox: Outbox,
    handoff: Handoff,
    handle: Handle,
    immediate: Immediate,
    wall: clock.Wall,
    until: float | None = None,
    probes: ProbeDesk | None = None,
) -> None:
    """Serve one URL until cancelled; with ``until`` (a trio time, for a drain), return once
    nothing is due before it. Cancellation leaves a send in flight undelivered: its row
    stays pending."""
    channel, index = target
    handoff.open(target)
    clean = False
    probes = probes or ProbeDesk()
    try:
        while True:
            probes.turn(target, busy=True)
            arrival = handoff.arrival(target)
            now = wall()
            fresh = handoff.take(target)
            if clean and fresh is not None and all(r.next_attempt <= now for r in fresh):
                # What is handed over next goes out next: it may come written handed over.
                handoff.ready(target, immediate(target))
                if fresh:
                    clean = await handle(target, fresh, now)
                    continue
                if until is not None:
                    return
                # Only this process queues rows, but look at the table now and then anyway.
                probes.turn(target, busy=False)
                with trio.move_on_after(IDLE_LOOK) as idle:
                    await arrival.wait()
                clean = not idle.cancelled_caught
                continue
            clean = False
            handoff.ready(target, False)
            rows = await outbox.due(channel, index, now, DUE_BATCH)
            if rows:
                await handle(target, rows, now)
                continue
            due = await outbox.next_due(channel, index)
            if due is None:
                # Nothing pending: from here on, what is handed over is all there is.
                clean = True
                continue
            wait = max(0.0, due - now)
            if until is not None and trio.current_time() + wait > until:
                return
            probes.turn(target, busy=False)
            with trio.move_on_after(wait):
                await arrival.wait()
    finally:
        probes.turn(target, busy=False)
        handoff.close(target)
