"""The engine's trio task: events in, alerts out, timers from the trio clock, state saved
to SQLite in a worker thread after each batch."""

from __future__ import annotations

import logging
import math

import trio

from alertd.engine.engine import Engine
from alertd.events import Alert, Event

log = logging.getLogger(__name__)

BATCH_MAX = 256  # events taken without waiting before alerts go out and state is saved
FINAL_SAVE_TIMEOUT = 5.0  # seconds a cancelled task still spends saving its last changes


async def run_engine(
    engine: Engine,
    receive: trio.MemoryReceiveChannel[Event],
    send: trio.MemorySendChannel[Alert],
    *,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Run ``engine`` until ``receive`` ends (then close ``send``) or the task is cancelled.

    Waits for the next event or the next timer deadline (``trio.sleep_until`` semantics via
    ``move_on_at``), so an ``autojump_clock`` drives hours of rule timers in milliseconds.
    Restores state from ``engine.state`` before reporting started. State changes are saved
    after each batch; on cancellation the last changes are saved under a shield, bounded by
    FINAL_SAVE_TIMEOUT. A failing save is logged and the engine goes on.
    """
    store = engine.state
    restored = await store.load() if store is not None else []
    engine.start(trio.current_time(), restored)
    task_status.started()
    try:
        async with receive, send:
            while True:
                deadline = engine.next_deadline()
                events: list[Event] = []
                with trio.move_on_at(math.inf if deadline is None else deadline):
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
                alerts: list[Alert] = []
                for event in events:
                    alerts += engine.process(event, now)
                alerts += engine.advance(now)
                for alert in alerts:
                    await send.send(alert)
                await _save(engine)
    finally:
        with trio.move_on_after(FINAL_SAVE_TIMEOUT) as scope:
            scope.shield = True
            await _save(engine)


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
