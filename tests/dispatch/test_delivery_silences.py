"""A silence, or an inhibition, also stops alerts already in the outbox (held for quiet
hours, or retrying): delivery asks the muting dispatch shares with it before it sends, and
picks up new silences without a restart."""

from __future__ import annotations

from datetime import UTC, datetime

import trio
import trio.testing

from alertd.config.model import ChannelSettings, Config, QuietHours, RuleSettings, Secret
from alertd.dispatch.muting import Muter
from alertd.dispatch.silences import Silences
from alertd.notify.delivery import Delivery
from alertd.notify.notifier import SendResult
from alertd.notify.recording import RecordingNotifier
from alertd.store.database import Database, connect
from alertd.store.outbox import Outbox
from alertd.store.silences import add_silence

from .helpers import make_alert, make_config, queued, running, settle

NIGHT = QuietHours(start="22:00", end="07:00")
BASE = datetime(2026, 1, 5, 23, 30, tzinfo=UTC).timestamp()  # inside NIGHT
SEVEN = datetime(2026, 1, 6, 7, 0, tzinfo=UTC).timestamp()


def wall() -> float:
    return BASE + trio.current_time()


def _silence_from_the_cli(db: Database, hours: float, **matchers: str) -> None:
    """What `alertd silence add` does: its own connection, so the daemon must notice."""
    conn = connect(db.path)
    try:
        add_silence(
            conn, rule="filled", matchers=matchers, starts=wall(), ends=wall() + hours * 3600
        )
    finally:
        conn.close()


def _quiet_config(**dispatch: object) -> Config:
    return make_config(
        channels={"me": ChannelSettings(urls=[Secret("fake://me")], quiet_hours=[NIGHT])},
        group_wait=5,
        **dispatch,
    )


async def test_silence_added_during_quiet_hours_stops_the_held_alert(
    db: Database, outbox: Outbox, silences: Silences, clock: trio.testing.MockClock
) -> None:
    """An alert held for quiet hours is not sent at 07:00 when a silence was added at 23:40."""
    config = _quiet_config()
    notifier = RecordingNotifier()
    delivery = Delivery(config, outbox, notifier, muting=Muter(config, silences), wall=wall)
    with trio.fail_after(86400):
        async with running(config, outbox, silences, wall=wall) as send:
            await send.send(make_alert(1))
            await settle(10)
        assert [r.status for r in await queued(outbox)] == ["pending"]
        await trio.sleep(600)
        _silence_from_the_cli(db, 12)
        assert await delivery.drain(SEVEN - BASE + 600) == 0
    assert notifier.attempts == []
    [row] = await queued(outbox)
    assert row.status == "silenced"


async def test_partly_silenced_row_sends_only_the_rest(
    db: Database, outbox: Outbox, silences: Silences, clock: trio.testing.MockClock
) -> None:
    """A held message of two alerts, one of them silenced later, arrives with the other only."""
    config = _quiet_config()
    notifier = RecordingNotifier()
    delivery = Delivery(config, outbox, notifier, muting=Muter(config, silences), wall=wall)
    with trio.fail_after(86400):
        async with running(config, outbox, silences, wall=wall) as send:
            await send.send(make_alert(1, labels={"side": "buy"}))
            await send.send(make_alert(2, labels={"side": "sell"}))
            await settle(10)
        [row] = await queued(outbox)
        assert row.title.startswith("2 alerts")
        _silence_from_the_cli(db, 12, side="sell")
        assert await delivery.drain(SEVEN - BASE + 600) == 0
    [message] = notifier.sent
    assert message.title == "Order 1 filled"
    assert "Order 2" not in message.body


async def test_silence_stops_a_retrying_alert(
    db: Database, outbox: Outbox, silences: Silences, clock: trio.testing.MockClock
) -> None:
    """An alert whose channel keeps failing is not sent once a silence covers it."""
    config = make_config(group_wait=1, retry_initial=60, retry_max=60)
    fail = [True]

    def answer(url: str, title: str, body: str) -> SendResult:
        return SendResult(ok=not fail[0], recoverable=True, detail="HTTP 503")

    notifier = RecordingNotifier(answer=answer)
    delivery = Delivery(config, outbox, notifier, muting=Muter(config, silences), wall=wall)
    with trio.fail_after(86400):
        async with trio.open_nursery() as nursery:
            await nursery.start(delivery.run)
            async with running(config, outbox, silences, wall=wall) as send:
                await send.send(make_alert(1))
                await settle(5)
            assert len(notifier.attempts) == 1
            _silence_from_the_cli(db, 1)
            fail[0] = False  # the service is back, but the alert is silenced now
            await trio.sleep(300)
            nursery.cancel_scope.cancel()
    assert len(notifier.attempts) == 1
    assert notifier.sent == []
    assert [r.status for r in await queued(outbox)] == ["silenced"]


async def test_an_alert_held_before_its_stream_went_down_is_inhibited_at_send_time(
    outbox: Outbox, silences: Silences, clock: trio.testing.MockClock
) -> None:
    """A stale alert held for quiet hours is not sent at 07:00 when its account's stream
    went down after it was queued; the "stream down" alert is sent."""
    config = _quiet_config(
        rules=[
            RuleSettings(name="down", on="stream.disconnected"),
            RuleSettings(name="stale", on="stream.stale"),
        ],
        inhibit_max=86400,
    )
    muter = Muter(config, silences)  # one, shared, as the daemon wires it
    notifier = RecordingNotifier()
    delivery = Delivery(config, outbox, notifier, muting=muter, wall=wall)
    with trio.fail_after(86400):
        async with running(config, outbox, silences, wall=wall, muter=muter) as send:
            await send.send(make_alert(1, rule="stale", key="main/x", event_kind="stream.stale"))
            await settle(10)
            await send.send(
                make_alert(2, rule="down", key="main", event_kind="stream.disconnected")
            )
            await settle(10)
        assert [r.status for r in await queued(outbox)] == ["pending", "pending"]
        assert await delivery.drain(SEVEN - BASE + 600) == 0
    assert [m.title for m in notifier.sent] == ["Order 2 filled"]
    assert sorted(r.status for r in await queued(outbox)) == ["delivered", "inhibited"]
