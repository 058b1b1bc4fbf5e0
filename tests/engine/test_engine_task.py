"""run_engine: events in, alerts out, timers driven by the trio clock, state saved."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest
import trio
import trio.lowlevel
import trio.testing

from alertd.engine import Engine, RuleStateStore, run_engine, task
from alertd.events import Alert, Event
from alertd.store.database import Database, db_path
from alertd.store.rule_state import StateChanges

from .factories import balance, engine, placed, rule


async def start(
    nursery: trio.Nursery, e: Engine
) -> tuple[trio.MemorySendChannel[Event], trio.MemoryReceiveChannel[Alert]]:
    events_in, events_out = trio.open_memory_channel[Event](100)
    alerts_in, alerts_out = trio.open_memory_channel[Alert](100)
    await nursery.start(run_engine, e, events_out, alerts_in)
    return events_in, alerts_out


async def test_timers_fire_over_hours_of_virtual_time(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """An order left open is reported after `open_for` of trio time, without real waiting."""
    e = engine(rule("slow", type="order_timeout", open_for=4 * 3600))
    async with trio.open_nursery() as nursery:
        events, alerts = await start(nursery, e)
        t0 = trio.current_time()
        await events.send(placed("1"))
        with trio.fail_after(5 * 3600):
            alert = await alerts.receive()
        assert alert.key == "main/1"
        assert trio.current_time() - t0 == 4 * 3600
        nursery.cancel_scope.cancel()


async def test_event_alerts_and_absence_in_one_run(autojump_clock: trio.testing.MockClock) -> None:
    """Events produce alerts at once; silence afterwards produces the absence alert on time."""
    e = engine(
        rule("any", on="balance.changed"),
        rule("quiet", type="absence", on="balance.changed", after=600),
        accounts=(),
    )
    async with trio.open_nursery() as nursery:
        events, alerts = await start(nursery, e)
        t0 = trio.current_time()
        await events.send(balance(1))
        with trio.fail_after(1):
            assert (await alerts.receive()).rule == "any"
        with trio.fail_after(3600):
            quiet = await alerts.receive()
        assert quiet.rule == "quiet" and trio.current_time() - t0 == 600
        nursery.cancel_scope.cancel()


async def test_closing_input_ends_the_task_and_closes_output() -> None:
    """When the event channel closes, run_engine returns and the alert channel ends."""
    e = engine(rule(on="balance.changed"))
    with trio.fail_after(5):
        async with trio.open_nursery() as nursery:
            events, alerts = await start(nursery, e)
            async with events:
                await events.send(balance(1))
            received = [a async for a in alerts]
    assert [a.rule for a in received] == ["r"]


async def test_state_is_saved_and_restored_through_the_task(tmp_path: Path) -> None:
    """A threshold fired in one run is still firing in the next: no second alert."""
    low = rule("low", type="threshold", on="balance.changed", value="balance", below=Decimal(10))
    for expected in (["firing"], []):
        db = Database(db_path(tmp_path))
        try:
            e = engine(low, state=RuleStateStore(db))
            with trio.fail_after(5):
                async with trio.open_nursery() as nursery:
                    events, alerts = await start(nursery, e)
                    async with events:
                        await events.send(balance(1))
                    assert [a.status async for a in alerts] == expected
        finally:
            db.close()


class CountingStore(RuleStateStore):
    """The real SQLite store, counting the saves it is asked for."""

    saves = 0
    saved: trio.Event | None = None  # set when a save started after it was made is done

    async def save(self, changes: StateChanges) -> None:
        self.saves += 1
        saved = self.saved
        await super().save(changes)
        if saved is not None:
            saved.set()


async def test_a_burst_of_state_changes_is_saved_once_and_lands_within_the_interval(
    tmp_path: Path,
) -> None:
    """Hundreds of state changes in a burst cost one or two SQLite saves, and the last of
    them is on disk within STATE_SAVE_INTERVAL even though no further event comes."""
    db = Database(db_path(tmp_path))
    try:
        store = CountingStore(db)
        e = engine(rule("quiet", type="absence", on="balance.changed", after=600), state=store)
        async with trio.open_nursery() as nursery:
            events, _alerts = await start(nursery, e)
            with trio.fail_after(5):
                for i in range(300):
                    await events.send(balance(i, t=i))
                    await trio.lowlevel.checkpoint()  # the engine takes each as a batch
                burst_saves = store.saves
                store.saved = trio.Event()
                await store.saved.wait()
            assert burst_saves <= 2
            on_disk = {(r.rule, r.key): r.data for r in store.load_sync()}
            in_memory = {(r.rule, r.key): r.data for r in e.snapshot()}
            assert on_disk == in_memory != {}
            nursery.cancel_scope.cancel()
    finally:
        db.close()


class StuckStore(RuleStateStore):
    """The real SQLite store, whose saves wait until ``release`` is set."""

    def __init__(self, db: Database) -> None:
        super().__init__(db)
        self.stuck = trio.Event()  # a save is waiting
        self.release = trio.Event()

    async def save(self, changes: StateChanges) -> None:
        self.stuck.set()
        await self.release.wait()
        await super().save(changes)


async def test_events_keep_flowing_while_a_state_save_waits_for_the_disk(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A save stuck on a slow disk does not hold up the engine: alerts for later events
    still come out, the save is not given up while the engine runs (however long it
    takes), and every change is on disk once the task ends."""
    monkeypatch.setattr(task, "FINAL_SAVE_TIMEOUT", 0.05)  # the stop's limit, not a save's
    db = Database(db_path(tmp_path))
    try:
        store = StuckStore(db)
        rules = [
            rule("quiet", type="absence", on="balance.changed", after=600),
            rule("moved", on="balance.changed", message="{{ balance }}"),
        ]
        e = engine(*rules, accounts=("main", "other"), state=store)
        with trio.fail_after(5):
            async with trio.open_nursery() as nursery:
                events, alerts = await start(nursery, e)
                await events.send(balance(1))
                assert (await alerts.receive()).body == "1"
                await store.stuck.wait()  # saving main's change; other's come after it
                for i in (2, 3):
                    await events.send(balance(i, account="other", t=i))
                    assert (await alerts.receive()).body == str(i)
                await trio.sleep(0.2)  # the disk stays slow longer than a stop may take
                store.release.set()
                await events.aclose()
        on_disk = {(r.rule, r.key): r.data for r in store.load_sync()}
        in_memory = {(r.rule, r.key): r.data for r in e.snapshot()}
        assert on_disk == in_memory != {}
    finally:
        db.close()


async def test_a_stop_during_a_stuck_save_takes_one_time_limit_not_two(
    tmp_path: Path, autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    """Cancelled while a save cannot finish, the engine task ends after FINAL_SAVE_TIMEOUT
    (the save in progress and the last one share it) and says what was not saved."""
    db = Database(db_path(tmp_path))
    try:
        store = StuckStore(db)
        e = engine(rule("quiet", type="absence", on="balance.changed", after=600), state=store)
        async with trio.open_nursery() as nursery:
            events, _alerts = await start(nursery, e)
            await events.send(balance(1))
            await store.stuck.wait()
            await events.send(balance(2, t=2))
            await trio.testing.wait_all_tasks_blocked()
            stopped_at = trio.current_time()
            nursery.cancel_scope.cancel()
        assert trio.current_time() - stopped_at == pytest.approx(task.FINAL_SAVE_TIMEOUT)
        assert "engine.state_save_timeout" in caplog.text
    finally:
        db.close()
