"""Delivery asks muting (silences and inhibition, one ``Muting`` interface) again just before
it sends, so an alert muted after it was queued does not reach the person. A small fake
Muting stands in for dispatch's, which has tests of its own."""

from __future__ import annotations

import attrs
import trio
import trio.testing

from alertd import clock
from alertd.dispatch.muting import Muted, Muter
from alertd.dispatch.silences import Silences
from alertd.events import Alert
from alertd.notify.delivery import Delivery
from alertd.notify.notifier import SendResult
from alertd.notify.recording import RecordingNotifier
from alertd.store.database import Database
from alertd.store.outbox import Notification, Outbox, notification_key

from .helpers import channel, make_alert, make_config, sent, wait_until


@attrs.define
class FakeMuting:
    """Mutes the alerts in ``mute`` (by id); records every refresh."""

    mute: dict[str, Muted] = attrs.field(factory=dict)
    refreshed: list[float] = attrs.field(factory=list)

    async def refresh(self, wall: float) -> None:
        self.refreshed.append(wall)

    def may_mute(self, wall: float, now: float) -> bool:
        return bool(self.mute)

    def muted(self, alert: Alert, *, wall: float, now: float) -> Muted | None:
        return self.mute.get(alert.id)


async def _queue_alerts(outbox: Outbox, alerts: list[Alert], title: str) -> None:
    """One notification carrying ``alerts``, stored with them, as dispatch queues it."""
    ids = [a.id for a in alerts]
    note = Notification(
        key=notification_key("me", 0, ids),
        channel="me",
        url_index=0,
        title=title,
        body="\n".join(a.title for a in alerts),
        alert_ids=tuple(ids),
        created=clock.wall(),
    )
    assert await outbox.record_and_enqueue(sent(alerts, clock.wall(), [note])) == 1


INHIBITED = Muted(how="inhibited", by="rule stream-down", source="stream-down")
SILENCED = Muted(how="silenced", by="silence 3f2a", source="3f2a")


async def test_an_alert_inhibited_after_it_was_queued_is_not_sent(
    outbox: Outbox, clock: trio.testing.MockClock
) -> None:
    """A row whose only alert is inhibited when its turn comes is finished as inhibited,
    with the rule named, and never reaches the service."""
    muting = FakeMuting(mute={"alert-1": INHIBITED})
    notifier = RecordingNotifier()
    delivery = Delivery(make_config({"me": channel("fake://me")}), outbox, notifier, muting=muting)
    with trio.fail_after(600):
        await _queue_alerts(outbox, [make_alert(1)], "Order 1 filled")
        assert await delivery.drain(trio.current_time() + 60) == 0
    assert notifier.attempts == []
    [row] = await outbox.rows()
    assert (row.status, row.last_error) == ("inhibited", "inhibited by rule stream-down")
    assert delivery.statistics().muted == 1
    assert muting.refreshed  # asked for what changed before deciding


async def test_a_partly_muted_row_goes_out_without_the_muted_alert(
    outbox: Outbox, clock: trio.testing.MockClock
) -> None:
    """Of a message about two alerts, one since silenced, the person gets the other alone,
    written as dispatch writes a single alert."""
    muting = FakeMuting(mute={"alert-2": SILENCED})
    notifier = RecordingNotifier()
    config = make_config({"me": channel("fake://me")})
    delivery = Delivery(config, outbox, notifier, muting=muting)
    with trio.fail_after(600):
        async with trio.open_nursery() as nursery:
            await nursery.start(delivery.run)
            await _queue_alerts(outbox, [make_alert(1), make_alert(2)], "2 alerts: filled")
            await wait_until(lambda: len(notifier.sent) == 1)
            nursery.cancel_scope.cancel()
    [message] = notifier.sent
    assert (message.title, message.body) == ("Order 1 filled", "buy 1 BTC_USDT filled at 100")
    assert [r.status for r in await outbox.rows()] == ["delivered"]


async def test_a_silence_wins_over_an_inhibition_in_the_row_status(
    outbox: Outbox, clock: trio.testing.MockClock
) -> None:
    """A row whose alerts are muted, one by a silence and one by inhibition, is finished as
    silenced (a person asked for it) and names both reasons."""
    muting = FakeMuting(
        mute={
            "alert-1": INHIBITED,
            "alert-2": Muted(how="silenced", by="silence 3f2a", source="3f2a"),
        }
    )
    notifier = RecordingNotifier()
    delivery = Delivery(make_config({"me": channel("fake://me")}), outbox, notifier, muting=muting)
    with trio.fail_after(600):
        await _queue_alerts(outbox, [make_alert(1), make_alert(2)], "2 alerts: filled")
        assert await delivery.drain(trio.current_time() + 60) == 0
    assert notifier.attempts == []
    [row] = await outbox.rows()
    assert row.status == "silenced"
    assert row.last_error == "silenced by rule stream-down, silence 3f2a"


async def test_rows_go_out_as_queued_when_nothing_can_mute(
    outbox: Outbox, clock: trio.testing.MockClock
) -> None:
    """With no silence or inhibition in force, rows go out as queued."""
    muting = FakeMuting()
    notifier = RecordingNotifier()
    delivery = Delivery(make_config({"me": channel("fake://me")}), outbox, notifier, muting=muting)
    with trio.fail_after(600):
        await _queue_alerts(outbox, [make_alert(1), make_alert(2)], "2 alerts: filled")
        assert await delivery.drain(trio.current_time() + 60) == 0
    assert [m.title for m in notifier.sent] == ["2 alerts: filled"]
    assert delivery.statistics().muted == 0


async def test_a_stream_going_down_holds_back_its_queued_stale_alert(
    db: Database, outbox: Outbox, clock: trio.testing.MockClock
) -> None:
    """With the daemon's Muter: a stale-stream alert waiting in the outbox (its channel was
    failing) is not sent once its account's stream is reported down; the row ends inhibited
    by the down alert's rule, and another account's alert still goes out."""
    config = make_config({"me": channel("fake://me")}, retry_initial=60, retry_max=60)
    muter = Muter(config, Silences(db))
    failing = [True]
    notifier = RecordingNotifier(
        answer=lambda u, t, b: SendResult(ok=not failing[0], recoverable=True, detail="503")
    )
    delivery = Delivery(config, outbox, notifier, muting=muter)
    stale = make_alert(1, rule="stale", event_kind="stream.stale", title="main is stale")
    other = make_alert(2, rule="stale", account="alt", event_kind="stream.stale")
    down = make_alert(3, rule="down", event_kind="stream.disconnected", title="main down")
    with trio.fail_after(3600):
        async with trio.open_nursery() as nursery:
            await nursery.start(delivery.run)
            await _queue_alerts(outbox, [stale], "main is stale")
            await wait_until(lambda: len(notifier.attempts) == 1)
            muter.observe(down, trio.current_time())  # what dispatch does with every alert
            await _queue_alerts(outbox, [other], "alt is stale")
            failing[0] = False
            await wait_until(lambda: len(notifier.sent) == 1)
            await trio.sleep(120)  # past the stale row's retry
            nursery.cancel_scope.cancel()
    assert [m.title for m in notifier.sent] == ["alt is stale"]
    statuses = {r.title: (r.status, r.last_error) for r in await outbox.rows()}
    assert statuses["main is stale"] == ("inhibited", "inhibited by rule down")
    assert delivery.statistics().muted == 1
