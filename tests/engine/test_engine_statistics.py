"""Engine.statistics(): a frozen snapshot of events in, alerts out, timers, rules and saves."""

from __future__ import annotations

from pathlib import Path

import attrs
import pytest
import trio

from alertd.engine import RuleStateStore, run_engine
from alertd.engine.engine import EngineStatistics, RuleStatistics
from alertd.events import Alert, Event
from alertd.store.database import Database, db_path

from .factories import balance, cancelled, engine, placed, rule


def test_counts_events_alerts_and_timers_as_they_happen() -> None:
    """Events in, alerts out (from events and from timers) and armed timers are counted."""
    e = engine(
        rule("moved", on="balance.changed"),
        rule("slow", type="order_timeout", on="order.*", open_for=60),
    )
    assert e.statistics().events_in == 0
    e.process(balance(1), 1.0)
    e.process(placed("1"), 2.0)
    e.process(placed("2"), 3.0)
    stats = e.statistics()
    assert (stats.events_in, stats.alerts_out, stats.timers_pending) == (3, 1, 2)
    assert len(e.advance(62.5)) == 1  # order 1's timeout
    e.process(cancelled("2"), 63.0)  # before its deadline: no alert, timer gone
    stats = e.statistics()
    assert (stats.events_in, stats.alerts_out, stats.timers_pending) == (4, 2, 0)
    assert stats.rules == (
        RuleStatistics(name="moved", type="event", keys=0, cooldowns=0),
        RuleStatistics(name="slow", type="order_timeout", keys=1, cooldowns=1),
    )


def test_a_snapshot_is_frozen_and_does_not_change_afterwards() -> None:
    """A snapshot taken earlier keeps its numbers, and cannot be written to."""
    e = engine(rule("moved", on="balance.changed"))
    before = e.statistics()
    e.process(balance(1), 1.0)
    assert before.events_in == 0 and e.statistics().events_in == 1
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        before.events_in = 5  # type: ignore[misc]


def test_events_of_a_removed_account_are_counted_as_dropped() -> None:
    """After a reload removes an account, its late events are counted, not evaluated."""
    e = engine(rule("moved", on="balance.changed"), accounts=("main", "alt"))
    e.process(balance(1), 1.0)
    e.reload(e.rules, accounts=["alt"])
    assert e.process(balance(2), 2.0) == []
    stats = e.statistics()
    assert (stats.events_in, stats.events_of_removed_accounts, stats.alerts_out) == (2, 1, 1)


async def test_state_saves_are_counted_by_the_engine_task(tmp_path: Path) -> None:
    """The engine task's saves show in the snapshot: saves done, rows written, no failures."""
    db = Database(db_path(tmp_path))
    try:
        e = engine(
            rule("quiet", type="absence", on="balance.changed", after=600),
            state=RuleStateStore(db),
        )
        events_in, events_out = trio.open_memory_channel[Event](10)
        alerts_in, alerts_out = trio.open_memory_channel[Alert](10)
        with trio.fail_after(10):
            async with trio.open_nursery() as nursery:
                await nursery.start(run_engine, e, events_out, alerts_in)
                await events_in.send(balance(1))
                await trio.sleep(0.2)  # the first change is saved at once
                await events_in.aclose()
        stats = e.statistics()
        assert isinstance(stats, EngineStatistics)
        assert stats.state_saves >= 1 and stats.state_rows_saved >= 1
        assert (stats.state_save_failures, stats.unsaved_changes) == (0, 0)
        assert [(r.rule, r.key) for r in RuleStateStore(db).load_sync()] == [("quiet", "main")]
        del alerts_out
    finally:
        db.close()
