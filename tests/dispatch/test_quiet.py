"""Quiet hours hold notifications until the window ends; they are never dropped."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import trio
import trio.testing

from alertd.config.model import ChannelSettings, Duration, QuietHours, Secret
from alertd.dispatch.quiet import quiet_until
from alertd.dispatch.silences import Silences
from alertd.notify.delivery import Delivery
from alertd.notify.recording import RecordingNotifier
from alertd.store.outbox import Outbox

from .helpers import make_alert, make_config, queued, running, settle

BERLIN = ZoneInfo("Europe/Berlin")
NIGHT = QuietHours(start="22:00", end="07:00", timezone="Europe/Berlin")


def test_overnight_window_in_a_timezone() -> None:
    """22:00-07:00 Berlin time is quiet at 23:30 and at 03:00 Berlin, not at 12:00."""
    late = datetime(2026, 1, 5, 23, 30, tzinfo=BERLIN)
    assert quiet_until([NIGHT], "r", late) == datetime(2026, 1, 6, 7, 0, tzinfo=BERLIN)
    early = datetime(2026, 1, 6, 3, 0, tzinfo=BERLIN)
    assert quiet_until([NIGHT], "r", early) == datetime(2026, 1, 6, 7, 0, tzinfo=BERLIN)
    assert quiet_until([NIGHT], "r", datetime(2026, 1, 6, 12, 0, tzinfo=BERLIN)) is None


def test_utc_instant_is_judged_in_the_window_timezone() -> None:
    """21:30 UTC in winter is 22:30 in Berlin: quiet."""
    assert quiet_until([NIGHT], "r", datetime(2026, 1, 5, 21, 30, tzinfo=UTC)) is not None


def test_days_name_the_day_a_window_starts() -> None:
    """A Friday-night window covers early Saturday but not early Friday."""
    friday = QuietHours(start="22:00", end="07:00", days=["fri"], timezone="UTC")
    saturday_3am = datetime(2026, 1, 10, 3, 0, tzinfo=UTC)
    friday_3am = datetime(2026, 1, 9, 3, 0, tzinfo=UTC)
    assert quiet_until([friday], "r", saturday_3am) is not None
    assert quiet_until([friday], "r", friday_3am) is None


def test_window_can_be_limited_to_rules() -> None:
    """A window with rules = ["price-*"] quiets price rules only."""
    window = QuietHours(start="00:00", end="23:59", rules=["price-*"], timezone="UTC")
    noon = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)
    assert quiet_until([window], "price-high", noon) is not None
    assert quiet_until([window], "filled", noon) is None


async def test_alert_in_quiet_hours_waits_for_the_window_end(
    outbox: Outbox, silences: Silences, clock: trio.testing.MockClock
) -> None:
    """At 23:30 Berlin, a channel with night quiet hours gets the alert at 07:00, not before."""
    config = make_config(
        channels={"me": ChannelSettings(urls=[Secret("fake://me")], quiet_hours=[NIGHT])},
        timezone="Europe/Berlin",
    )
    base = datetime(2026, 1, 5, 23, 30, tzinfo=BERLIN).timestamp()
    seven = datetime(2026, 1, 6, 7, 0, tzinfo=BERLIN).timestamp()

    def wall() -> float:
        return base + trio.current_time()

    notifier = RecordingNotifier()
    delivery = Delivery(config, outbox, notifier, wall=wall)
    with trio.fail_after(86400):
        async with running(config, outbox, silences, wall=wall) as send:
            await send.send(make_alert(1))
            await settle()
        [row] = await queued(outbox)
        assert row.next_attempt == seven
        async with trio.open_nursery() as nursery:
            # drain() runs the same per-URL worker as run(), without run()'s 30 s re-scan
            # (which would cost a real autojump pause every virtual 30 s of the night).
            nursery.start_soon(delivery.drain, seven - base + 60)
            await trio.sleep_until(seven - base - 60)
            assert notifier.sent == []
    [message] = notifier.sent
    assert message.title == "Order 1 filled"
    assert seven <= base + message.at <= seven + 5
    assert [r.status for r in await queued(outbox)] == ["delivered"]


async def test_hold_longer_than_max_age_is_delivered_not_expired(
    outbox: Outbox, silences: Silences, clock: trio.testing.MockClock
) -> None:
    """max_age counts from the end of quiet hours: a 7.5 h hold under a 1 h max_age still sends."""
    config = make_config(
        channels={"me": ChannelSettings(urls=[Secret("fake://me")], quiet_hours=[NIGHT])},
        timezone="Europe/Berlin",
        max_age=Duration(3600.0),
    )
    base = datetime(2026, 1, 5, 23, 30, tzinfo=BERLIN).timestamp()
    seven = datetime(2026, 1, 6, 7, 0, tzinfo=BERLIN).timestamp()

    def wall() -> float:
        return base + trio.current_time()

    notifier = RecordingNotifier()
    delivery = Delivery(config, outbox, notifier, wall=wall)
    with trio.fail_after(86400):
        async with running(config, outbox, silences, wall=wall) as send:
            await send.send(make_alert(1))
            await settle()
        assert await delivery.drain(seven - base + 600) == 0
    assert [m.title for m in notifier.sent] == ["Order 1 filled"]
    assert [r.status for r in await queued(outbox)] == ["delivered"]


async def test_dispatch_wide_quiet_hours_apply_to_every_channel(
    outbox: Outbox, silences: Silences, clock: trio.testing.MockClock
) -> None:
    """[dispatch] quiet_hours hold alerts for all channels; outside them alerts go at once."""
    config = make_config(quiet_hours=[QuietHours(start="22:00", end="07:00")])
    day = datetime(2026, 1, 5, 12, 0, tzinfo=UTC).timestamp()
    night = datetime(2026, 1, 5, 23, 0, tzinfo=UTC).timestamp()
    with trio.fail_after(3600):
        async with running(config, outbox, silences, wall=lambda: day) as send:
            await send.send(make_alert(1))
            await settle()
        async with running(config, outbox, silences, wall=lambda: night) as send:
            await send.send(make_alert(2, key="other"))
            await settle()
    first, second = await queued(outbox)
    assert first.next_attempt == day
    assert second.next_attempt == datetime(2026, 1, 6, 7, 0, tzinfo=UTC).timestamp()
