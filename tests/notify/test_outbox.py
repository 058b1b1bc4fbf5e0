"""The outbox remembers alerts and notifications durably and never queues one twice."""

from __future__ import annotations

from alertd.store.database import Database
from alertd.store.outbox import Notification, Outbox, notification_key

from .helpers import make_alert, sent


def _note(key: str = "k1", created: float = 1000.0, **kw: object) -> Notification:
    fields: dict[str, object] = {
        "key": key,
        "channel": "me",
        "url_index": 0,
        "title": "t",
        "body": "b",
        "alert_ids": ("a1",),
        "created": created,
    }
    fields.update(kw)
    return Notification(**fields)  # type: ignore[arg-type]


async def test_same_key_is_queued_once(outbox: Outbox) -> None:
    """Enqueuing a notification whose key is already in the outbox adds nothing."""
    assert await outbox.enqueue([_note()]) == 1
    assert await outbox.enqueue([_note()]) == 0
    assert await outbox.pending_count() == 1


async def test_same_alert_id_is_recorded_once(outbox: Outbox) -> None:
    """An alert id seen before is reported as a duplicate."""
    assert await outbox.record_alert(make_alert(1), 1000.0)
    assert not await outbox.record_alert(make_alert(1, title="other"), 1001.0)


async def test_held_alerts_survive_a_new_connection(db: Database, outbox: Outbox) -> None:
    """An alert held in a group comes back intact from a fresh Outbox over the same file."""
    alert = make_alert(3, labels={"symbol": "BTC_USDT"}, channels=("me",))
    await outbox.record_alert(alert, 1000.0)
    reopened = Outbox(Database(db.path))
    assert await reopened.held_alerts() == [alert]
    await reopened.enqueue([_note()], sent_alert_ids=[alert.id])
    assert await reopened.held_alerts() == []


async def test_quiet_hours_hold_a_row_back(outbox: Outbox) -> None:
    """A notification with not_before is not due before that time."""
    await outbox.enqueue([_note(not_before=5000.0)])
    assert await outbox.due("me", 0, 4999.0, 10) == []
    assert [r.key for r in await outbox.due("me", 0, 5000.0, 10)] == ["k1"]


def test_key_depends_on_url_and_alerts_not_order() -> None:
    """The idempotency key is the same for the same alerts in any order, and differs per URL."""
    assert notification_key("me", 0, ["a", "b"]) == notification_key("me", 0, ["b", "a"])
    assert notification_key("me", 0, ["a"]) != notification_key("me", 1, ["a"])


async def test_record_and_enqueue_writes_nothing_when_an_alert_is_a_duplicate(
    outbox: Outbox,
) -> None:
    """A batch recorded and queued at once is refused whole (no row, no alert) if any of its
    alert ids was seen before, and goes in whole otherwise."""
    assert await outbox.record_alert(make_alert(1), 1000.0)
    batch = [make_alert(2), make_alert(1)]
    note = _note("k2", alert_ids=("alert-2", "alert-1"))
    assert await outbox.record_and_enqueue(sent(batch, 1001.0, [note])) is None
    assert await outbox.pending_count() == 0
    assert await outbox.alerts(["alert-2"]) == {}
    note3 = _note("k3", alert_ids=("alert-3",))
    added = await outbox.record_and_enqueue(sent([make_alert(3)], 1002.0, [note3]))
    assert added == 1
    assert [r.key for r in await outbox.rows(status="pending")] == ["k3"]
    assert list(await outbox.alerts(["alert-3"])) == ["alert-3"]


async def test_statistics_show_what_waits_per_channel_and_since_when(outbox: Outbox) -> None:
    """The snapshot counts pending rows per channel and names the oldest one's due time;
    delivered rows and duplicates do not count."""
    empty = await outbox.statistics()
    assert (empty.pending, empty.pending_by_channel, empty.oldest_pending) == (0, {}, None)
    await outbox.enqueue([_note("k1", 1000.0), _note("k2", 1010.0, channel="ops")])
    await outbox.enqueue([_note("k3", 990.0, not_before=2000.0), _note("k1", 1000.0)])
    await outbox.mark_delivered(["k2"], 1020.0)
    stats = await outbox.statistics()
    assert stats.pending == 2
    assert stats.pending_by_channel == {"me": 2}
    assert stats.oldest_pending == 1000.0  # k3 is held until 2000 (quiet hours)
    assert stats.queued == 3


async def test_a_delivered_row_is_never_marked_anything_else(outbox: Outbox) -> None:
    """Marks apply to pending rows only: a late retry or expiry leaves a delivery as it is."""
    await outbox.enqueue([_note("k1")])
    await outbox.mark_delivered(["k1"], 1001.0)
    await outbox.mark_retry([("k1", 2000.0)], error="HTTP 500", now=1002.0)
    await outbox.mark_expired(["k1"], error="too old", now=1003.0)
    [row] = await outbox.rows()
    assert (row.status, row.attempts, row.last_error) == ("delivered", 0, "")


async def test_a_hand_off_is_a_possible_repeat_only_to_a_later_process(db: Database) -> None:
    """A row queued as the next one a ready worker sends is written handed over by this
    process: not a repeat to it, but to the next process (a crash cut the send off); a URL
    with no ready worker is not claimed."""
    outbox = Outbox(db)
    outbox.handoff.open(("me", 0))
    outbox.handoff.ready(("me", 0), True)
    await outbox.enqueue([_note("k1"), _note("k2"), _note("k3", channel="ops")])
    rows = {r.key: r for r in await outbox.rows()}
    assert [outbox.possible_repeat(r) for r in rows.values()] == [False, False, False]
    assert outbox.handoff.statistics().claimed == 1  # k1 only: one row a take; "ops" has none
    reopened = Database(db.path)
    later = Outbox(reopened)
    assert {k: later.possible_repeat(r) for k, r in rows.items()} == {
        "k1": True,
        "k2": False,
        "k3": False,
    }
    reopened.close()
