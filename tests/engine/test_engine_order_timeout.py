"""Order timeouts: open too long, partial fill stalled, cleared by fill or cancel."""

from __future__ import annotations

from pathlib import Path

from alertd.config.model import AccountSettings, Config
from alertd.engine import Engine, RuleStateStore, compile_rules
from alertd.store.database import Database, db_path

from .factories import cancelled, engine, filled, partial, placed, rule


def slow(**kw):
    return rule("slow", type="order_timeout", **kw)


def test_order_open_too_long_fires_once_and_fill_resolves() -> None:
    """An order open for an hour alerts once; its later fill resolves the alert."""
    e = engine(slow(open_for=3600))
    e.process(placed("7"), 0.0)
    assert e.next_deadline() == 3600.0
    [alert] = e.advance(3600.0)
    assert alert.key == "main/7" and alert.title == "[main] slow: order 7 BTC_USDT buy open for 1h"
    assert e.advance(99999.0) == []
    [done] = e.process(filled("7"), 100000.0)
    assert done.status == "resolved" and "filled after 1d 3h" in done.title


def test_order_closed_in_time_never_alerts() -> None:
    """A cancel before the deadline clears the timer silently."""
    e = engine(slow(open_for=3600))
    e.process(placed("7"), 0.0)
    assert e.process(cancelled("7"), 100.0) == []
    assert e.next_deadline() is None
    assert e.advance(10000.0) == []


def test_stalled_partial_fill() -> None:
    """A partial fill with no progress for 10 minutes alerts; progress re-arms the timer."""
    e = engine(slow(stalled_for=600))
    e.process(placed("1", amount="1"), 0.0)
    assert e.next_deadline() is None  # no partial fill yet: not stalled
    e.process(partial("1", filled_="0.2"), 100.0)
    e.process(partial("1", filled_="0.2"), 500.0)  # same fill: no progress
    e.process(partial("1", filled_="0.5"), 650.0)  # progress
    assert e.advance(1249.0) == []
    [alert] = e.advance(1250.0)
    assert "no progress for 10m" in alert.title
    assert e.process(filled("1", amount="1"), 1300.0)[0].status == "resolved"


def test_where_selects_which_orders_are_timed() -> None:
    """`where` is checked when an order is first seen: small orders are not timed."""
    e = engine(slow(open_for=60, where="amount >= 10"))
    e.process(placed("small", amount="1"), 0.0)
    e.process(placed("big", amount="20"), 0.0)
    assert [a.key for a in e.advance(60.0)] == ["main/big"]


def test_repeat_reminds_while_open() -> None:
    """repeat re-sends the open-order alert until the order closes."""
    e = engine(slow(open_for=60, repeat=600))
    e.process(placed("1"), 0.0)
    assert len(e.advance(60.0)) == 1
    assert len(e.advance(660.0)) == 1
    e.process(cancelled("1"), 700.0)
    assert e.advance(5000.0) == []


def test_progress_after_a_stall_resolves_it_once() -> None:
    """A fired stall is resolved (resolved_message) by the next progress, and the later fill
    sends nothing more."""
    e = engine(slow(stalled_for=600, resolved_message="moving: {{ reason }}"))
    e.process(placed("1"), 0.0)
    e.process(partial("1", filled_="0.2"), 60.0)
    [stalled] = e.advance(700.0)
    assert stalled.status == "firing"
    [back] = e.process(partial("1", filled_="0.5"), 800.0)
    assert back.status == "resolved" and back.key == stalled.key
    assert back.body == "moving: progress"
    assert back.title == (
        "[main] RESOLVED slow: order 1 BTC_USDT buy filling again after 12m 20s without progress"
    )
    assert e.process(filled("1", amount="1"), 900.0) == []


def test_progress_keeps_the_key_firing_while_the_order_is_still_overdue() -> None:
    """With the open-too-long alert also standing, progress resolves nothing; the fill
    resolves the key once."""
    e = engine(slow(open_for=300, stalled_for=600))
    e.process(placed("1"), 0.0)
    e.process(partial("1", filled_="0.2"), 60.0)
    assert [a.status for a in e.advance(700.0)] == ["firing", "firing"]  # open, stalled
    assert e.process(partial("1", filled_="0.5"), 800.0) == []
    assert [a.status for a in e.process(filled("1", amount="1"), 900.0)] == ["resolved"]


def test_reload_stops_timing_orders_of_a_removed_account() -> None:
    """After a reload drops account "old", its open orders neither alert nor resolve, and
    their saved state is deleted; the remaining account's orders are timed as before."""
    r = slow(open_for=3600, stalled_for=600)
    e = engine(r, accounts=("main", "old"))
    e.start(0.0)
    e.process(placed("1", account="main"), 0.0)
    e.process(placed("2", account="old"), 0.0)
    e.process(partial("2", account="old", filled_="0.5"), 10.0)
    e.take_state_changes()
    e.reload(compile_rules([r], timezone="UTC"), accounts=["main"])
    assert [a.key for a in e.advance(10_000.0)] == ["main/1"]
    gone = [row for row in e.take_state_changes().rows if row.key == "old/2"]
    assert [row.data for row in gone] == [None]
    assert e.process(filled("2", account="old"), 10_001.0) == []


def test_late_event_of_a_removed_account_does_not_start_timing_again() -> None:
    """An event of the removed account still queued at the reload (or arriving before its
    connection is closed) is dropped; an account added back is watched again."""
    r = slow(open_for=3600)
    e = engine(r, accounts=("main", "old"))
    e.start(0.0)
    e.process(placed("2", account="old"), 0.0)
    e.reload(compile_rules([r], timezone="UTC"), accounts=["main"])
    assert e.process(partial("2", account="old", filled_="0.5"), 10.0) == []
    assert e.process(placed("3", account="old"), 11.0) == []
    assert e.advance(10_000.0) == []

    e.reload(compile_rules([r], timezone="UTC"), accounts=["main", "old"])
    e.process(placed("4", account="old"), 10_001.0)
    assert [a.key for a in e.advance(20_000.0)] == ["old/4"]


def test_order_of_an_account_removed_while_down_is_not_timed_after_restart(
    tmp_path: Path,
) -> None:
    """An open order of an account taken out of the config between two runs sends nothing
    in the next run; the configured account's open order still fires at its deadline."""
    r = slow(open_for=3600)

    def config(*names: str) -> Config:
        accounts = [
            AccountSettings(name=n, exchange="piexgo", url="ws://127.0.0.1:1/ws") for n in names
        ]
        return Config(accounts=accounts, rules=[r])

    db = Database(db_path(tmp_path))
    try:
        a = Engine.from_config(config("main", "old"), state=RuleStateStore(db))
        a.start(0.0)
        a.process(placed("1", account="main"), 0.0)
        a.process(placed("2", account="old"), 0.0)
        a.flush_state()

        b = Engine.from_config(config("main"), state=RuleStateStore(db))
        b.start(100.0)
        assert [x.key for x in b.advance(100_000.0)] == ["main/1"]
    finally:
        db.close()


def test_timer_alert_carries_the_fields_the_rule_kinds_share() -> None:
    """A stalled order's alert carries the last update's order fields, but none that only a
    partial fill has, even when that update also made another rule alert."""
    fills = rule("fills", on="order.partially_filled", message="at {{ filled }}")
    e = engine(slow(stalled_for=600), fills)
    e.process(placed("1", amount="1"), 0.0)
    [fill] = e.process(partial("1", filled_="0.2"), 100.0)
    assert fill.body == "at 0.2" and "last_filled" in fill.fields
    [alert] = e.advance(700.0)
    assert alert.fields["filled"] == "0.2" and alert.fields["remaining"] == "0.8"
    assert "last_filled" not in alert.fields
