"""The dispatcher end to end: dedup, routing, restart, shutdown, and delivery of what it
queues."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
import trio
import trio.testing

from alertd.config.model import ChannelSettings, QuietHours, RuleSettings, Secret
from alertd.dispatch.dispatcher import Dispatcher
from alertd.dispatch.muting import Muter
from alertd.dispatch.router import route
from alertd.dispatch.silences import Silences
from alertd.events import Alert
from alertd.notify.delivery import Delivery
from alertd.notify.recording import RecordingNotifier
from alertd.store.database import Database
from alertd.store.outbox import Outbox

from .helpers import PausingDatabase, make_alert, make_config, queued, running, settle

TWO = {
    "me": ChannelSettings(urls=[Secret("fake://me")]),
    "ops": ChannelSettings(urls=[Secret("fake://ops-a"), Secret("fake://ops-b")]),
}


def test_routes_to_named_channels_or_the_default() -> None:
    """An alert goes to the channels it names, its rule's notify list, or the default."""
    config = make_config(
        channels=TWO, default_channel="ops", rules=[RuleSettings(name="r", notify=["me"])]
    )
    assert route(make_alert(1, channels=("me", "ops")), config).channels == ("me", "ops")
    assert route(make_alert(2, rule="r", channels=()), config).channels == ("me",)
    assert route(make_alert(3, rule="other", channels=()), config).channels == ("ops",)
    typo = route(make_alert(4, channels=("mee",)), config)
    assert (typo.channels, typo.unknown) == (("ops",), ("mee",))


async def test_same_alert_twice_is_queued_once(
    outbox: Outbox, silences: Silences, clock: trio.testing.MockClock
) -> None:
    """An alert id seen again (a replayed frame after reconnect) is not queued again."""
    with trio.fail_after(3600):
        async with running(make_config(), outbox, silences) as send:
            await send.send(make_alert(1))
            await settle(100)
            await send.send(make_alert(1))
            await settle(100)
    assert len(await queued(outbox)) == 1


async def test_one_row_per_channel_url(
    outbox: Outbox, silences: Silences, clock: trio.testing.MockClock
) -> None:
    """An alert for two channels, one with two URLs, is queued as three rows."""
    with trio.fail_after(3600):
        async with running(make_config(channels=TWO), outbox, silences) as send:
            await send.send(make_alert(1, channels=("me", "ops")))
            await settle()
    rows = await queued(outbox)
    assert sorted((r.channel, r.url_index) for r in rows) == [("me", 0), ("ops", 0), ("ops", 1)]


async def test_alert_with_no_channel_is_logged_not_lost_silently(
    outbox: Outbox,
    silences: Silences,
    clock: trio.testing.MockClock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """With no channel and no default, the alert is logged as an error naming the fix."""
    with trio.fail_after(3600):
        async with running(make_config(), outbox, silences) as send:
            await send.send(make_alert(1, channels=()))
            await settle()
    assert await queued(outbox) == []
    assert "dispatch.unrouted rule=filled" in caplog.text
    assert "default_channel" in caplog.text


async def test_alerts_held_in_a_group_survive_a_restart(
    db: Database, clock: trio.testing.MockClock
) -> None:
    """Alerts waiting in group wait when the dispatcher stops are sent by the next one."""
    config = make_config(group_wait=60)
    with trio.fail_after(3600):
        async with running(config, Outbox(db), Silences(db)) as send:
            await send.send(make_alert(1))
            await send.send(make_alert(2))
            await settle(5)
        reopened = PausingDatabase(db.path)
        outbox = Outbox(reopened)
        assert await queued(outbox) == []
        async with running(config, outbox, Silences(reopened)):
            await settle(120)
        rows = await queued(outbox)
        reopened.close()
    assert [r.alert_ids for r in rows] == [("alert-1", "alert-2")]


async def test_closing_intake_queues_held_groups_at_once(
    outbox: Outbox, silences: Silences, clock: trio.testing.MockClock
) -> None:
    """When the alert channel closes (shutdown), held groups are queued without waiting."""
    send, receive = trio.open_memory_channel[Alert](10)
    config = make_config(group_wait=600)
    dispatcher = Dispatcher(config, outbox, Muter(config, silences))
    with trio.fail_after(3600):
        async with trio.open_nursery() as nursery:
            await nursery.start(dispatcher.run, receive)
            await send.send(make_alert(1))
            await settle()
            start = trio.current_time()
            await send.aclose()
        assert trio.current_time() - start < 60
    assert [r.alert_ids for r in await queued(outbox)] == [("alert-1",)]


async def test_alert_to_delivered_message(
    outbox: Outbox, silences: Silences, clock: trio.testing.MockClock
) -> None:
    """Dispatcher and Delivery together turn an alert into one sent message."""
    config = make_config()
    notifier = RecordingNotifier()
    with trio.fail_after(3600):
        async with trio.open_nursery() as nursery:
            await nursery.start(Delivery(config, outbox, notifier).run)
            async with running(config, outbox, silences) as send:
                await send.send(make_alert(1))
                await settle(5)
            nursery.cancel_scope.cancel()
    assert [(m.url, m.title, m.body) for m in notifier.sent] == [
        ("fake://me", "Order 1 filled", "buy 1 BTC_USDT filled at 100")
    ]
    assert await outbox.pending_count() == 0


async def test_a_grouped_message_carries_its_most_severe_alert(
    outbox: Outbox, silences: Silences, clock: trio.testing.MockClock
) -> None:
    """A group of a warning and a critical alert is sent as critical, so the service shows it
    as the louder of the two."""
    config = make_config(group_wait=10)
    notifier = RecordingNotifier()
    with trio.fail_after(3600):
        async with trio.open_nursery() as nursery:
            await nursery.start(Delivery(config, outbox, notifier).run)
            async with running(config, outbox, silences) as send:
                await send.send(make_alert(1, severity="warning"))
                await send.send(make_alert(2, severity="critical"))
                await settle(30)
            nursery.cancel_scope.cancel()
    assert [m.severity for m in notifier.sent] == ["critical"]


async def test_statistics_count_what_the_dispatcher_did_and_holds(
    outbox: Outbox, silences: Silences
) -> None:
    """The statistics snapshot counts alerts taken in, duplicates, silenced, inhibited and
    unrouted alerts, rows queued and those held for quiet hours, and what waits in groups."""
    config = make_config(
        channels={
            **TWO,
            "night": ChannelSettings(
                urls=[Secret("fake://night")],
                quiet_hours=[QuietHours(start="00:00", end="23:59")],
            ),
        },
        rules=[RuleSettings(name="down", on="stream.disconnected")],
    )
    noon = datetime(2026, 1, 5, 12, 0, tzinfo=UTC).timestamp()  # inside the night's window
    _, receive = trio.open_memory_channel[Alert](10)
    # Real time, no virtual clock: nothing here waits, and alert-7's group stays waiting.
    dispatcher = Dispatcher(config, outbox, Muter(config, silences), wall=lambda: noon)
    with trio.fail_after(20):
        async with trio.open_nursery() as nursery:
            await nursery.start(dispatcher.run, receive)
            await silences.add(rule="muted", matchers={}, starts=0, ends=2e9, comment="")
            await dispatcher.accept_many(
                [
                    make_alert(1, channels=("me", "ops")),  # three rows
                    make_alert(2, rule="muted", key="m"),  # silenced
                    make_alert(3, rule="down", key="main", event_kind="stream.disconnected"),
                    make_alert(4, rule="stale", key="s", event_kind="stream.stale"),  # inhibited
                    make_alert(5, rule="lost", key="l", channels=()),  # unrouted
                    make_alert(6, key="n", channels=("night",)),  # held for quiet hours
                    make_alert(7),  # the group of alert-1 sent a moment ago: it waits
                ]
            )
            await dispatcher.accept(make_alert(1))  # a duplicate
            stats = dispatcher.statistics()
            nursery.cancel_scope.cancel()
    assert (stats.alerts_received, stats.duplicates) == (8, 1)
    assert (stats.silenced, stats.inhibited, stats.unrouted) == (1, 1, 1)
    assert (stats.rows_queued, stats.rows_held_for_quiet_hours) == (5, 1)
    assert (stats.grouping.groups_waiting, stats.grouping.alerts_waiting) == (1, 1)
