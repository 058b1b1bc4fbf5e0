"""The engine's trio task: events in, alerts out, timers from the trio clock, state saved
to SQLite in a worker thread at most every STATE_SAVE_INTERVAL seconds and on stop."""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from functools import partial

import attrs
import trio
import trio.lowlevel

from alertd.engine.assignments import Assignments, finish_summaries
from alertd.engine.engine import Engine
from alertd.events import Alert, Event

log = logging.getLogger(__name__)

BATCH_MAX = 256  # events taken without waiting before alerts go out and state is saved
# Behind a flood, the engine naps instead of yielding between batches. Each pass through
# trio's run queue costs about as much as a small batch's work, and a yield found one
# event per pass (the reader hands on one frame a pass), so the engine cost one pass per
# frame; a nap of FLOOD_NAP takes a batch of ~100 frames at the e2e benchmark's rate (5 ms
# measured best: 2.37x -> 2.13x the bare client's CPU a frame against 1 ms, where 10 and
# 20 ms did worse, the batch's events no longer fitting the caches). It
# begins only after FLOOD_PASSES yields in a row each found events waiting: at the latency
# benchmark's 1,000 frames/s the next frame is never there after a yield, so no nap delays
# an event that is not already queued behind a flood, and then by at most FLOOD_NAP.
FLOOD_PASSES = 8
FLOOD_NAP = 0.005  # trio seconds
FINAL_SAVE_TIMEOUT = 5.0  # seconds a stopping task still spends saving its last changes
# Rule state is saved at most this often (trio clock seconds). Absence and order_timeout
# rules change state on nearly every event, so saving after every batch put a worker-thread
# SQLite transaction behind every few events under load (~15% of the daemon's time on the
# e2e flood, and the engine's pauses overflowed the account buffer). A change after a quiet
# spell is still saved at once; only a burst of changes within this window waits for it.
#
# Why losing up to this much state is safe: only a hard kill loses it (a stop, a reload or a
# crash of this task saves under a shield in ``finally``). Alert ids are deterministic
# (``alerts.alert_id``: rule, key, status and the cause, i.e. the event's identity or the
# timer's deadline), and ``Outbox.record_alerts`` inserts them with INSERT OR IGNORE into
# ``dispatch_alerts`` (kept until ``prune``), so an alert re-fired after a restart from
# state up to this old, from the same cause, is dropped by dispatch as a duplicate.
# What can still be lost with the last second's changes: a transition taken on an event
# that is not seen again (a threshold that fired may fire once more on the next event, with
# a new cause, so a second notification; a resolve may be repeated), counts of a rate rule
# (up to this long of events uncounted), an absence rule's last-seen time (its deadline
# moves earlier by at most this long), and order_timeout's view of orders placed, filled or
# cancelled in that window (a filled order may still be reported as open too long, or a new
# one not watched). The per-batch save had the same holes, only narrower.
STATE_SAVE_INTERVAL = 1.0


async def run_engine(
    engine: Engine,
    receive: trio.MemoryReceiveChannel[Event],
    send: trio.MemorySendChannel[Alert],
    *,
    on_alert: Callable[[Alert], None] | None = None,
    assignments: Assignments | None = None,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Run ``engine`` until ``receive`` ends (then close ``send``) or the task is cancelled.
    ``on_alert`` sees each alert as it is sent (the daemon counts them there rather than in a
    task of its own between the engine and dispatch: each task on the way is one more trip
    through trio's run queue for every alert).

    Waits for the next event or the next timer deadline (``trio.sleep_until`` semantics via
    ``move_on_at``), so an ``autojump_clock`` drives hours of rule timers in milliseconds.
    Restores state from ``engine.state`` before reporting started. State changes are saved
    after a batch when the last save is at least STATE_SAVE_INTERVAL old, else when it is
    (the task wakes for that even without events). Saves run in a task of their own, so
    the engine goes on taking events while SQLite writes (a slow disk must not back events
    up into the account buffers), and are never given up while the engine runs. On
    cancellation or the end of ``receive``, the save in progress and one last save of what
    is left share one FINAL_SAVE_TIMEOUT, under a shield. A failing save is logged and the
    engine goes on.
    """
    store = engine.state
    restored = await store.load() if store is not None else []
    engine.start(trio.current_time(), restored)
    task_status.started()
    saver, waiting = _Saver(engine), _Waiting()
    try:
        async with trio.open_nursery() as nursery, receive, send:
            nursery.start_soon(saver.run)
            if assignments is not None:  # a replica's: the accounts it owns (engine/assignments)
                engine.owners.unassigned = True
                nursery.start_soon(
                    partial(assignments.follow, engine, wake=waiting.wake, save=saver.request)
                )
                nursery.start_soon(partial(finish_summaries, engine, send, on_alert=on_alert))
            try:
                await _process(engine, receive, send, saver, on_alert, waiting=waiting)
            finally:
                # Stopping: the save in progress and the last one share one time limit.
                saver.stop_by(trio.current_time() + FINAL_SAVE_TIMEOUT)
                nursery.cancel_scope.cancel()
    finally:
        saver.stop_by(trio.current_time() + FINAL_SAVE_TIMEOUT)
        await saver.save()


async def _process(
    engine: Engine,
    receive: trio.MemoryReceiveChannel[Event],
    send: trio.MemorySendChannel[Alert],
    saver: _Saver,
    on_alert: Callable[[Alert], None] | None,
    *,
    waiting: _Waiting,
) -> None:
    """The engine's loop, until ``receive`` ends."""
    save_at = -math.inf  # trio clock: no save before this (one was just done)
    flood = 0  # passes in a row that found events waiting after the last one's yield
    while True:
        events: list[Event] = []
        try:
            events.append(receive.receive_nowait())
            flood += 1
        except (trio.WouldBlock, trio.EndOfChannel):
            flood = 0
            deadline = engine.next_deadline()
            wake = math.inf if deadline is None else deadline
            if engine.has_state_changes():
                wake = min(wake, save_at)
            with trio.move_on_at(wake) as waiting.scope:
                try:
                    events.append(await receive.receive())
                except trio.EndOfChannel:
                    break
        while len(events) < BATCH_MAX:
            try:
                events.append(receive.receive_nowait())
            except (trio.WouldBlock, trio.EndOfChannel):
                break
        now = trio.current_time()
        alerts = engine.process_all(events, now)
        alerts += engine.advance(now)
        for alert in alerts:
            if on_alert is not None:
                on_alert(alert)
            await send.send(alert)
        now = trio.current_time()
        if now >= save_at and engine.has_state_changes():
            saver.request()
            save_at = now + STATE_SAVE_INTERVAL
        # Under load, yield once and look again before waiting: waiting for the next event
        # or deadline takes a cancel scope (~6 us to enter and leave, more than a small
        # batch's processing), and while a flood lasts there is an event again by the
        # time the readers have run. Timers are not delayed: each pass fires the ones due.
        if flood >= FLOOD_PASSES:
            await trio.sleep(FLOOD_NAP)
        else:
            await trio.lowlevel.checkpoint()


@attrs.define
class _Waiting:
    """The engine loop's wait for the next event or deadline, for ``wake`` to cut short (the
    accounts it owns changed: its timers did)."""

    scope: trio.CancelScope | None = None

    def wake(self) -> None:
        if self.scope is not None:
            self.scope.cancel()


class _Saver:
    """Saves the engine's state changes when asked, one save at a time. The changes are
    taken when the save starts, so a request made during a save is answered by the next
    one, with everything changed until then. A save is shielded (a save cancelled while it
    waits for the database would lose the changes it took) and unbounded while the engine
    runs; once it stops, the save in progress and the last one end by ``stop_by``."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._wanted = trio.Event()
        self._scope: trio.CancelScope | None = None
        self._stop_at = math.inf

    def request(self) -> None:
        self._wanted.set()

    def stop_by(self, deadline: float) -> None:
        """The engine is stopping: saves end by ``deadline`` (the earliest one given)."""
        self._stop_at = min(self._stop_at, deadline)
        if self._scope is not None:
            self._scope.deadline = self._stop_at

    async def run(self) -> None:
        while True:
            await self._wanted.wait()
            self._wanted = trio.Event()
            await self.save()

    async def save(self) -> None:
        with trio.CancelScope(shield=True, deadline=self._stop_at) as scope:
            self._scope = scope
            await _save(self._engine)
        self._scope = None
        if scope.cancelled_caught:
            log.warning("engine.state_save_timeout (the last rule state changes are not saved)")


async def _save(engine: Engine) -> None:
    if engine.state is None:
        engine.take_state_changes()  # nothing keeps them; do not let them pile up
        return
    changes = engine.take_state_changes()
    if not changes:
        return
    try:
        await engine.state.save(changes)
    except Exception:
        log.exception("engine.state_save_failed rows=%d", len(changes.rows))
        engine.record_save(rows=len(changes.rows), ok=False)
    else:
        engine.record_save(rows=len(changes.rows), ok=True)
