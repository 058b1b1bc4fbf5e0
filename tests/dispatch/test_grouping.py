"""Alerts of one rule and key arriving close together go out as one readable message."""

from __future__ import annotations

from datetime import UTC

import trio
import trio.testing

from alertd.dispatch.grouping import Grouper
from alertd.dispatch.silences import Silences
from alertd.messages.summary import summarize
from alertd.store.outbox import Outbox

from .helpers import make_alert, make_config, queued, running, settle


def test_group_wait_collects_then_interval_spaces() -> None:
    """The first alert waits group_wait for company; later ones go out once per interval."""
    grouper = Grouper(group_wait=10.0, group_interval=60.0)
    grouper.add(make_alert(1), 0.0)
    grouper.add(make_alert(2), 4.0)
    assert grouper.pop_due(9.9) == []
    [group] = grouper.pop_due(10.0)
    assert [a.id for a in group.alerts] == ["alert-1", "alert-2"]
    grouper.add(make_alert(3), 20.0)
    assert grouper.next_deadline() == 70.0
    assert grouper.pop_due(69.0) == []
    assert [a.id for g in grouper.pop_due(70.0) for a in g.alerts] == ["alert-3"]


def test_different_keys_are_different_groups() -> None:
    """Alerts of one rule but different keys are never merged."""
    grouper = Grouper(group_wait=5.0, group_interval=60.0)
    grouper.add(make_alert(1, key="main/BTC_USDT"), 0.0)
    grouper.add(make_alert(2, key="main/ETH_USDT"), 0.0)
    assert sorted(g.key for g in grouper.pop_due(5.0)) == ["main/BTC_USDT", "main/ETH_USDT"]


def test_idle_group_starts_fresh() -> None:
    """After a quiet interval, a group's next alert waits only group_wait again."""
    grouper = Grouper(group_wait=0.0, group_interval=60.0)
    grouper.add(make_alert(1), 0.0)
    grouper.pop_due(0.0)
    grouper.pop_due(100.0)
    grouper.add(make_alert(2), 100.0)
    assert grouper.next_deadline() == 100.0


def test_summary_is_readable() -> None:
    """Several alerts become a headline with the count and span, then one line per alert."""
    alerts = [make_alert(n) for n in (1, 2, 3)]
    title, body = summarize("filled", "main/BTC_USDT", alerts, UTC)
    assert title == "3 alerts: filled (main/BTC_USDT)"
    lines = body.splitlines()
    assert lines[0] == (
        "3 alerts for rule 'filled', key main/BTC_USDT (3 firing), 12:00:01-12:00:03 UTC"
    )
    assert "\u2022 12:00:02 Order 2 filled" in lines
    assert "  buy 2 BTC_USDT filled at 100" in lines


def test_summary_of_one_alert_is_the_alert() -> None:
    """A group of one is sent exactly as the rules engine wrote it."""
    assert summarize("filled", "k", [make_alert(1)], UTC) == (
        "Order 1 filled",
        "buy 1 BTC_USDT filled at 100",
    )


def test_summary_names_how_many_were_left_out() -> None:
    """Past group_max_items the summary says how many more alerts there were."""
    alerts = [make_alert(n) for n in range(1, 8)]
    _, body = summarize("filled", "k", alerts, UTC, max_items=5)
    assert body.endswith("\u2026 and 2 more")


async def test_three_alerts_within_group_wait_make_one_message(
    outbox: Outbox, silences: Silences, clock: trio.testing.MockClock
) -> None:
    """Three alerts of one rule+key within group_wait are queued as one notification."""
    config = make_config(group_wait=30, group_interval=300)
    with trio.fail_after(3600):
        async with running(config, outbox, silences) as send:
            for n in (1, 2, 3):
                await send.send(make_alert(n))
                await settle(5)
            assert await queued(outbox) == []
            await settle(30)
            rows = await queued(outbox)
    [row] = rows
    assert row.title == "3 alerts: filled (main/BTC_USDT)"
    assert all(f"Order {n} filled" in row.body for n in (1, 2, 3))
    assert row.alert_ids == ("alert-1", "alert-2", "alert-3")


def test_idle_groups_are_forgotten_and_deadlines_skip_flushed_groups() -> None:
    """Thousands of one-alert groups sent at once are forgotten an interval later, and the
    next deadline is the one group still holding alerts."""
    grouper = Grouper(group_wait=0.0, group_interval=60.0)
    for n in range(2000):
        grouper.add(make_alert(n, key=f"order-{n}"), 0.0)
    assert len(grouper.pop_due(0.0)) == 2000
    grouper.add(make_alert(1, key="order-1"), 10.0)  # within the interval: waits for it
    assert grouper.next_deadline() == 60.0
    assert grouper.pop_due(59.0) == []
    [group] = grouper.pop_due(60.0)
    assert group.key == "order-1"
    stats = grouper.statistics()
    assert (stats.groups_waiting, stats.alerts_waiting) == (0, 0)
    assert stats.groups_remembered == 1  # only order-1, sent at 60, is still remembered
