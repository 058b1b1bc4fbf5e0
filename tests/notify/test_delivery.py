"""Delivery from the outbox: retries, expiry, rate limits, splitting, per-URL isolation and
restarts, against the RecordingNotifier on virtual time."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import attrs
import pytest
import trio
import trio.testing

from alertd import clock
from alertd.config.model import Config, Secret
from alertd.messages.notices import POSSIBLE_REPEAT
from alertd.notify.delivery import Delivery
from alertd.notify.expiry import retry_delay
from alertd.notify.notifier import MessageLimits, Outgoing, SendResult
from alertd.notify.recording import RecordingNotifier
from alertd.store.database import Database, connect, db_path
from alertd.store.handoff import HANDOFF_CAPACITY, Handoff
from alertd.store.outbox import Notification, Outbox, notification_key

from .helpers import channel, make_config, wait_until


async def _queue(
    outbox: Outbox, config: Config, name: str, n: int, *, title: str = "Alert", body: str = "b"
) -> None:
    wall = clock.wall()
    notes = []
    for url_index in range(len(config.channels[name].urls)):
        notes.append(
            Notification(
                key=notification_key(name, url_index, [f"{title}-{n}"]),
                channel=name,
                url_index=url_index,
                title=f"{title} {n}",
                body=body,
                alert_ids=(f"{title}-{n}",),
                created=wall,
            )
        )
    await outbox.enqueue(notes)


def _failing_first(times: int) -> tuple[list[int], RecordingNotifier]:
    calls = [0]

    def answer(url: str, title: str, body: str) -> SendResult:
        calls[0] += 1
        if calls[0] <= times:
            return SendResult(ok=False, recoverable=True, detail="HTTP 500")
        return SendResult(ok=True)

    return calls, RecordingNotifier(answer=answer)


async def test_recoverable_failure_is_retried_with_backoff(
    outbox: Outbox, clock: trio.testing.MockClock
) -> None:
    """Three failures then success: delivered exactly once, after backoff of about 2, 4, 8 s."""
    config = make_config({"me": channel("fake://me")}, retry_initial=2, retry_max=300)
    calls, notifier = _failing_first(3)
    delivery = Delivery(config, outbox, notifier, rng=random.Random(1))
    with trio.fail_after(7200):
        async with trio.open_nursery() as nursery:
            await nursery.start(delivery.run)
            await _queue(outbox, config, "me", 1)
            await wait_until(lambda: len(notifier.sent) == 1)
            await trio.sleep(600)
            nursery.cancel_scope.cancel()
    assert len(notifier.sent) == 1
    assert calls[0] == 4
    gaps = [b.at - a.at for a, b in zip(notifier.attempts, notifier.attempts[1:], strict=False)]
    for gap, base in zip(gaps, [2, 4, 8], strict=True):
        assert base * 0.8 - 0.1 <= gap <= base * 1.2 + 0.1
    rows = await outbox.rows()
    assert [r.status for r in rows] == ["delivered"]
    stats = delivery.statistics()
    assert (stats.delivered, stats.failed, stats.retries, stats.expired) == (1, 3, 3, 0)
    assert stats.in_flight == 0


def test_backoff_is_capped() -> None:
    """Retry delays double from retry_initial and never pass retry_max."""
    rng = random.Random(0)
    delays = [retry_delay(n, 2.0, 60.0, rng) for n in range(1, 12)]
    assert delays[0] <= 2.4
    assert max(delays) <= 60.0
    assert delays[-1] >= 48.0


async def test_unrecoverable_failure_expires_and_tells_the_fallback(
    outbox: Outbox, clock: trio.testing.MockClock
) -> None:
    """A permanent failure is not retried; the fallback channel hears what was lost and why."""
    config = make_config(
        {"slack": channel("fake://slack"), "ops": channel("fake://ops")},
        fallback_channel="ops",
    )

    def answer(url: str, title: str, body: str) -> SendResult:
        if url == "fake://slack":
            return SendResult(ok=False, recoverable=False, detail="HTTP 401 invalid token")
        return SendResult(ok=True)

    notifier = RecordingNotifier(answer=answer)
    delivery = Delivery(config, outbox, notifier)
    with trio.fail_after(7200):
        async with trio.open_nursery() as nursery:
            await nursery.start(delivery.run)
            await _queue(outbox, config, "slack", 1, title="Big fill")
            await wait_until(lambda: len(notifier.sent) == 1)
            await trio.sleep(60)
            nursery.cancel_scope.cancel()
    assert len([a for a in notifier.attempts if a.url == "fake://slack"]) == 1
    [report] = notifier.sent
    assert report.url == "fake://ops"
    assert "slack" in report.title
    assert "Big fill 1" in report.body
    assert "HTTP 401 invalid token" in report.body
    statuses = {r.channel: r.status for r in await outbox.rows()}
    assert statuses == {"slack": "expired", "ops": "delivered"}
    stats = delivery.statistics()
    assert (stats.delivered, stats.failed, stats.retries, stats.expired) == (1, 1, 0, 1)


async def test_alert_older_than_max_age_expires(
    outbox: Outbox, clock: trio.testing.MockClock
) -> None:
    """A channel that keeps failing is given up on after max_age, not retried forever."""
    config = make_config({"me": channel("fake://me")}, retry_initial=10, retry_max=60, max_age=600)
    notifier = RecordingNotifier(
        answer=lambda u, t, b: SendResult(ok=False, recoverable=True, detail="timeout")
    )
    delivery = Delivery(config, outbox, notifier)
    with trio.fail_after(7200):
        async with trio.open_nursery() as nursery:
            await nursery.start(delivery.run)
            await _queue(outbox, config, "me", 1)
            await trio.sleep(900)
            nursery.cancel_scope.cancel()
    [row] = await outbox.rows()
    assert row.status == "expired"
    assert 8 <= len(notifier.attempts) <= 20
    stats = delivery.statistics()
    assert stats.expired == 1
    assert stats.failed == len(notifier.attempts)
    assert notifier.attempts[-1].at - notifier.attempts[0].at <= 600 + 1


async def test_only_the_failing_url_of_a_channel_is_retried(
    outbox: Outbox, clock: trio.testing.MockClock
) -> None:
    """With two URLs where one fails once, the good URL receives the alert exactly once."""
    config = make_config({"both": channel("fake://good", "fake://flaky")}, retry_initial=1)
    flaky = [0]

    def answer(url: str, title: str, body: str) -> SendResult:
        if url == "fake://flaky":
            flaky[0] += 1
            if flaky[0] == 1:
                return SendResult(ok=False, recoverable=True, detail="HTTP 503")
        return SendResult(ok=True)

    notifier = RecordingNotifier(answer=answer)
    delivery = Delivery(config, outbox, notifier)
    with trio.fail_after(7200):
        async with trio.open_nursery() as nursery:
            await nursery.start(delivery.run)
            await _queue(outbox, config, "both", 1)
            await wait_until(lambda: len(notifier.sent) == 2)
            await trio.sleep(30)
            nursery.cancel_scope.cancel()
    assert sorted(m.url for m in notifier.sent) == ["fake://flaky", "fake://good"]
    assert [m.url for m in notifier.attempts].count("fake://good") == 1
    assert [m.url for m in notifier.attempts].count("fake://flaky") == 2


async def test_backlog_over_the_rate_limit_becomes_one_digest(
    outbox: Outbox, clock: trio.testing.MockClock
) -> None:
    """30 notifications for a channel limited to 5/1m arrive as one digest naming all 30."""
    config = make_config({"me": channel("fake://me", rate_limit="5/1m")})
    notifier = RecordingNotifier()
    delivery = Delivery(config, outbox, notifier)
    with trio.fail_after(7200):
        for n in range(30):
            await _queue(outbox, config, "me", n)
        async with trio.open_nursery() as nursery:
            await nursery.start(delivery.run)
            await wait_until(lambda: len(notifier.sent) >= 1)
            await trio.sleep(120)
            nursery.cancel_scope.cancel()
    assert len(notifier.sent) == 1
    [digest] = notifier.sent
    assert "30 notifications" in digest.title
    assert all(f"Alert {n}\n" in digest.body + "\n" for n in range(30))
    assert await outbox.pending_count() == 0
    stats = delivery.statistics()
    assert (stats.delivered, stats.digests) == (30, 1)


def _times_each_alert_arrived(notifier: RecordingNotifier, n: int) -> dict[int, int]:
    text = "".join(f"{m.title}\n{m.body}\n" for m in notifier.sent)
    return {i: text.count(f"Alert {i}\n") for i in range(n)}


async def test_digest_failure_never_resends_what_was_delivered(
    outbox: Outbox, clock: trio.testing.MockClock
) -> None:
    """A long digest whose third message gets a 429 once still brings every alert exactly once."""
    config = make_config({"tg": channel("fake://tg", rate_limit="5/1m")}, retry_initial=1)
    calls = [0]

    def answer(url: str, title: str, body: str) -> SendResult:
        calls[0] += 1
        if calls[0] == 3:
            return SendResult(ok=False, recoverable=True, detail="HTTP 429")
        return SendResult(ok=True)

    notifier = RecordingNotifier(
        answer=answer, limits_by_url={"fake://tg": MessageLimits(body=1000)}
    )
    with trio.fail_after(7200):
        for n in range(30):
            await _queue(outbox, config, "tg", n, body="x" * 80)
        async with trio.open_nursery() as nursery:
            await nursery.start(Delivery(config, outbox, notifier).run)
            await trio.sleep(600)
            nursery.cancel_scope.cancel()
    assert calls[0] >= 4  # the failure happened and was retried
    assert _times_each_alert_arrived(notifier, 30) == dict.fromkeys(range(30), 1)
    assert await outbox.pending_count() == 0


async def test_digest_of_a_long_backlog_keeps_to_the_rate_limit(
    outbox: Outbox, clock: trio.testing.MockClock
) -> None:
    """A backlog needing several digest messages under 2/1m never sends 3 in one minute."""
    config = make_config({"tg": channel("fake://tg", rate_limit="2/1m")})
    notifier = RecordingNotifier(limits_by_url={"fake://tg": MessageLimits(body=1000)})
    with trio.fail_after(7200):
        for n in range(30):
            await _queue(outbox, config, "tg", n, body="x" * 80)
        async with trio.open_nursery() as nursery:
            await nursery.start(Delivery(config, outbox, notifier).run)
            await trio.sleep(600)
            nursery.cancel_scope.cancel()
    times = [m.at for m in notifier.attempts]
    assert len(times) >= 3
    for i in range(len(times) - 2):
        assert times[i + 2] - times[i] >= 60 - 1e-6
    assert all(len(m.body) <= 1000 for m in notifier.sent)
    assert _times_each_alert_arrived(notifier, 30) == dict.fromkeys(range(30), 1)
    assert await outbox.pending_count() == 0


async def test_split_message_parts_keep_to_the_rate_limit(
    outbox: Outbox, clock: trio.testing.MockClock
) -> None:
    """One message split in 3 parts under a 2/1m limit sends its third part a minute later."""
    config = make_config({"tg": channel("fake://tg", rate_limit="2/1m")})
    notifier = RecordingNotifier(limits_by_url={"fake://tg": MessageLimits(body=1000)})
    body = "\n".join("w" * 99 for _ in range(25))  # 2 500 characters: 3 parts
    with trio.fail_after(7200):
        await _queue(outbox, config, "tg", 1, body=body)
        async with trio.open_nursery() as nursery:
            await nursery.start(Delivery(config, outbox, notifier).run)
            await trio.sleep(300)
            nursery.cancel_scope.cancel()
    assert [m.title for m in notifier.sent] == ["Alert 1 (1/3)", "Alert 1 (2/3)", "Alert 1 (3/3)"]
    assert notifier.sent[2].at - notifier.sent[0].at >= 60 - 1e-6


async def test_rate_limit_spaces_out_single_messages(
    outbox: Outbox, clock: trio.testing.MockClock
) -> None:
    """Alerts arriving one by one under a 2/1m limit are never more than 2 in any minute."""
    config = make_config({"me": channel("fake://me", rate_limit="2/1m")})
    notifier = RecordingNotifier()
    delivery = Delivery(config, outbox, notifier)
    with trio.fail_after(7200):
        async with trio.open_nursery() as nursery:
            await nursery.start(delivery.run)
            for n in range(6):
                await _queue(outbox, config, "me", n)
                await trio.sleep(10)
            await trio.sleep(300)
            nursery.cancel_scope.cancel()
    times = [m.at for m in notifier.sent]
    for i in range(len(times) - 2):
        assert times[i + 2] - times[i] >= 60 - 1e-6
    delivered = " ".join(m.title + "\n" + m.body for m in notifier.sent)
    assert all(f"Alert {n}" in delivered for n in range(6))
    assert await outbox.pending_count() == 0


async def test_hanging_channel_does_not_delay_another(
    outbox: Outbox, clock: trio.testing.MockClock
) -> None:
    """While one channel's service never answers, another channel's alert goes out at once."""
    config = make_config(
        {"stuck": channel("fake://stuck", timeout=30.0), "fine": channel("fake://fine")}
    )
    notifier = RecordingNotifier(delay={"fake://stuck": 10_000.0})
    delivery = Delivery(config, outbox, notifier)
    with trio.fail_after(7200):
        async with trio.open_nursery() as nursery:
            await nursery.start(delivery.run)
            await _queue(outbox, config, "stuck", 1)
            await wait_until(lambda: len(notifier.attempts) == 1, step=0.01)
            assert delivery.statistics().in_flight == 1  # the stuck service holds it
            start = trio.current_time()
            await _queue(outbox, config, "fine", 2)
            await wait_until(lambda: len(notifier.sent) == 1, step=0.01)
            assert trio.current_time() - start < 1.0
            assert delivery.statistics().workers == 2
            nursery.cancel_scope.cancel()
    assert notifier.sent[0].url == "fake://fine"


async def test_split_message_resumes_after_the_parts_already_sent(
    outbox: Outbox, clock: trio.testing.MockClock
) -> None:
    """When part 2 of 3 fails, the retry sends parts 2 and 3 only: part 1 is not repeated."""
    config = make_config({"tg": channel("fake://tg")}, retry_initial=1)
    calls = [0]

    def answer(url: str, title: str, body: str) -> SendResult:
        calls[0] += 1
        if calls[0] == 2:
            return SendResult(ok=False, recoverable=True, detail="HTTP 502")
        return SendResult(ok=True)

    notifier = RecordingNotifier(
        answer=answer, limits_by_url={"fake://tg": MessageLimits(body=1000)}
    )
    body = "\n".join("w" * 99 for _ in range(25))  # 2 500 characters: 3 parts
    delivery = Delivery(config, outbox, notifier)
    with trio.fail_after(7200):
        await _queue(outbox, config, "tg", 1, body=body)
        async with trio.open_nursery() as nursery:
            await nursery.start(delivery.run)
            await wait_until(lambda: len(notifier.sent) == 3)
            await trio.sleep(30)
            nursery.cancel_scope.cancel()
    assert [m.title for m in notifier.sent] == ["Alert 1 (1/3)", "Alert 1 (2/3)", "Alert 1 (3/3)"]
    assert "\n".join(m.body for m in notifier.sent) == body


async def test_restart_resumes_pending_and_never_resends_delivered(
    db: Database, clock: trio.testing.MockClock
) -> None:
    """A new Delivery over the same SQLite file sends what was pending and nothing twice."""
    config = make_config({"me": channel("fake://me")})
    first_outbox = Outbox(db)
    first = RecordingNotifier()
    with trio.fail_after(7200):
        await _queue(first_outbox, config, "me", 1)
        async with trio.open_nursery() as nursery:
            await nursery.start(Delivery(config, first_outbox, first).run)
            await wait_until(lambda: len(first.sent) == 1)
            nursery.cancel_scope.cancel()
        # queued while nothing was delivering, as if the process died right after
        await _queue(first_outbox, config, "me", 2)

        reopened = Database(db.path)
        second_outbox = Outbox(reopened)
        second = RecordingNotifier()
        async with trio.open_nursery() as nursery:
            await nursery.start(Delivery(config, second_outbox, second).run)
            await wait_until(lambda: len(second.sent) == 1)
            await trio.sleep(30)
            nursery.cancel_scope.cancel()
        reopened.close()
    assert [m.title for m in first.sent] == ["Alert 1"]
    assert [m.title for m in second.sent] == ["Alert 2"]


async def test_drain_delivers_pending_within_the_deadline(
    outbox: Outbox, clock: trio.testing.MockClock
) -> None:
    """drain() sends what is due and returns how much is left when the deadline is reached."""
    config = make_config({"fast": channel("fake://fast"), "slow": channel("fake://slow")})
    notifier = RecordingNotifier(delay={"fake://slow": 100.0})
    delivery = Delivery(config, outbox, notifier)
    with trio.fail_after(7200):
        await _queue(outbox, config, "fast", 1)
        await _queue(outbox, config, "slow", 2)
        start = trio.current_time()
        left = await delivery.drain(start + 5.0)
    assert trio.current_time() - start <= 5.0 + 0.1
    assert [m.url for m in notifier.sent] == ["fake://fast"]
    assert left == 1


@pytest.mark.parametrize("capacity", [HANDOFF_CAPACITY, 10, 0])
async def test_backlog_goes_out_in_order_each_once(
    db: Database, clock: trio.testing.MockClock, capacity: int
) -> None:
    """300 rows queued before delivery starts, and 50 more while it sends, reach the service
    once each, in the order they were queued, and all end delivered: the same whether rows
    come through the hand-off, overflow it, or are all read back from the table."""
    outbox = Outbox(db, handoff=Handoff(capacity=capacity))
    config = make_config({"me": channel("fake://me")})
    notifier = RecordingNotifier()
    for n in range(300):
        await _queue(outbox, config, "me", n)
    delivery = Delivery(config, outbox, notifier)
    with trio.fail_after(3600):
        async with trio.open_nursery() as nursery:
            await nursery.start(delivery.run)
            for n in range(300, 350):
                await _queue(outbox, config, "me", n)
            await wait_until(lambda: len(notifier.sent) >= 350)
            await trio.sleep(60)
            nursery.cancel_scope.cancel()
    titles = [m.title for m in notifier.sent]
    assert titles == [f"Alert {n}" for n in range(350)]
    assert {r.status for r in await outbox.rows()} == {"delivered"}
    assert delivery.statistics().delivered == 350
    if capacity == 0:
        assert outbox.handoff.statistics().handed == 0


async def test_fresh_rows_are_handed_over_not_read_back(
    outbox: Outbox, clock: trio.testing.MockClock
) -> None:
    """Rows queued while a URL's worker is idle reach it through the hand-off, in order."""
    config = make_config({"me": channel("fake://me")})
    notifier = RecordingNotifier()
    delivery = Delivery(config, outbox, notifier)
    with trio.fail_after(3600):
        async with trio.open_nursery() as nursery:
            await nursery.start(delivery.run)
            await _queue(outbox, config, "me", 0)
            await wait_until(lambda: len(notifier.sent) == 1)
            await trio.sleep(5)  # the worker read the (now empty) table: it is clean
            for n in range(1, 4):
                await _queue(outbox, config, "me", n)
                await wait_until(lambda n=n: len(notifier.sent) == n + 1)  # type: ignore[misc]
            nursery.cancel_scope.cancel()
    assert [m.title for m in notifier.sent] == [f"Alert {n}" for n in range(4)]
    handoff = outbox.handoff.statistics()
    assert handoff.handed >= 3
    assert handoff.claimed >= 3  # queued already written handed over: no write before send
    assert (handoff.overflows, handoff.waiting, handoff.capacity) == (0, 0, HANDOFF_CAPACITY)


async def test_an_overflowing_handoff_falls_back_to_the_table(
    db: Database, clock: trio.testing.MockClock
) -> None:
    """While a slow service holds the worker, more rows arrive than the hand-off keeps; it
    says so, and every row still goes out once, in order, read back from the table."""
    outbox = Outbox(db, handoff=Handoff(capacity=5))
    # catch_up so long that the slow service still gets one message a row (no digests)
    config = make_config({"me": channel("fake://me")}, catch_up=3600.0)
    notifier = RecordingNotifier(delay={"fake://me": 1.0})
    delivery = Delivery(config, outbox, notifier)
    with trio.fail_after(3600):
        async with trio.open_nursery() as nursery:
            await nursery.start(delivery.run)
            await _queue(outbox, config, "me", 0)
            await wait_until(lambda: len(notifier.sent) == 1)
            await trio.sleep(5)
            start = trio.current_time()
            for n in range(1, 21):
                await _queue(outbox, config, "me", n)
            await wait_until(lambda: len(notifier.sent) == 21, step=0.1)
            # One second a row: none waited for the worker's idle look at the table.
            assert trio.current_time() - start < 20 * 1.0 + 2
            await trio.sleep(30)
            nursery.cancel_scope.cancel()
    assert [m.title for m in notifier.sent] == [f"Alert {n}" for n in range(21)]
    assert outbox.handoff.statistics().overflows >= 1
    assert await outbox.pending_count() == 0


async def test_failure_inside_a_batch_keeps_the_rest_pending(
    outbox: Outbox, clock: trio.testing.MockClock
) -> None:
    """When the third of five queued rows fails, the first two are delivered once, the third
    is retried later, and the last two still go out: each row reaches the service once."""
    config = make_config({"me": channel("fake://me")}, retry_initial=5, retry_max=5)
    calls = [0]

    def answer(url: str, title: str, body: str) -> SendResult:
        calls[0] += 1
        return SendResult(ok=calls[0] != 3, recoverable=True, detail="HTTP 500")

    notifier = RecordingNotifier(answer=answer)
    for n in range(5):
        await _queue(outbox, config, "me", n)
    delivery = Delivery(config, outbox, notifier, rng=random.Random(1))
    with trio.fail_after(3600):
        async with trio.open_nursery() as nursery:
            await nursery.start(delivery.run)
            await wait_until(lambda: len(notifier.sent) == 5)
            await trio.sleep(60)
            nursery.cancel_scope.cancel()
    assert sorted(m.title for m in notifier.sent) == [f"Alert {n}" for n in range(5)]
    assert [m.title for m in notifier.sent][:2] == ["Alert 0", "Alert 1"]
    assert notifier.sent[-1].title == "Alert 2"  # the retry comes after its backoff
    assert {r.status for r in await outbox.rows()} == {"delivered"}


async def test_each_row_is_recorded_before_the_next_is_handed_over(
    outbox: Outbox, clock: trio.testing.MockClock
) -> None:
    """While a backlog drains, every row the service accepted is already recorded delivered
    when the next one is handed over: a crash then resends at most the one in flight."""
    config = make_config({"me": channel("fake://me")})
    for n in range(120):
        await _queue(outbox, config, "me", n)
    pending_at_send: list[int] = []
    recorder = RecordingNotifier()

    @attrs.define
    class Watching:
        """Notes how many rows were pending each time it was handed a message."""

        async def send(self, url: Secret, message: Outgoing, **kw: Any) -> SendResult:
            pending_at_send.append((await outbox.statistics()).pending)
            return await recorder.send(url, message, **kw)

        def limits(self, url: Secret) -> MessageLimits:
            return recorder.limits(url)

    delivery = Delivery(config, outbox, Watching())
    with trio.fail_after(3600):
        assert await delivery.drain(trio.current_time() + 600) == 0
    assert pending_at_send == list(range(120, 0, -1))
    assert [m.title for m in recorder.sent] == [f"Alert {n}" for n in range(120)]


async def test_a_send_cut_off_is_resent_marked_as_a_possible_repeat(
    db: Database, clock: trio.testing.MockClock
) -> None:
    """The message in the service's hands when delivery stopped goes out again on the next
    start with the possible-repeat mark before its title, on every later attempt too; the
    rows behind it, never handed over, go out unmarked."""
    config = make_config({"me": channel("fake://me")}, retry_initial=1)
    first_outbox = Outbox(db)
    for n in range(3):
        await _queue(first_outbox, config, "me", n)
    hanging = RecordingNotifier(delay={"fake://me": 10_000.0})
    with trio.fail_after(7200):
        async with trio.open_nursery() as nursery:
            await nursery.start(Delivery(config, first_outbox, hanging).run)
            await wait_until(lambda: len(hanging.attempts) == 1)
            nursery.cancel_scope.cancel()  # alertd stops while the service holds Alert 0

        reopened = Database(db.path)
        outbox = Outbox(reopened)
        answers = iter([SendResult(ok=False, recoverable=True, detail="HTTP 502")])
        second = RecordingNotifier(answer=lambda u, t, b: next(answers, SendResult(ok=True)))
        assert await Delivery(config, outbox, second).drain(trio.current_time() + 600) == 0
        reopened.close()
    mark = POSSIBLE_REPEAT
    # Alert 0 is refused once; the rows behind it go out meanwhile, then its retry.
    attempts = [f"{mark}Alert 0", "Alert 1", "Alert 2", f"{mark}Alert 0"]
    assert [m.title for m in second.attempts] == attempts
    assert [m.title for m in second.sent] == attempts[1:]


async def test_an_outbox_from_before_the_handed_column_still_delivers(tmp_path: Path) -> None:
    """A state database written by an older alertd (no ``handed`` column) is upgraded in
    place: its pending row goes out once, unmarked."""
    path = db_path(tmp_path)
    conn = connect(path)
    conn.executescript(OLD_OUTBOX)
    conn.execute(
        "INSERT INTO outbox (key, channel, url_index, title, body, alert_ids, next_attempt, "
        "created, due_since, updated) VALUES ('k1', 'me', 0, 'Old row', 'b', '[]', 0, 0, 0, 0)"
    )
    conn.close()
    db = Database(path)
    try:
        outbox = Outbox(db)
        notifier = RecordingNotifier()
        config = make_config({"me": channel("fake://me")}, max_age=10**10)
        with trio.fail_after(60):
            assert await Delivery(config, outbox, notifier).drain(trio.current_time() + 10) == 0
    finally:
        db.close()
    assert [m.title for m in notifier.sent] == ["Old row"]


# The outbox table as alertd wrote it before deliveries were recorded one by one.
OLD_OUTBOX = """
CREATE TABLE outbox (
    key TEXT PRIMARY KEY, channel TEXT NOT NULL, url_index INTEGER NOT NULL,
    title TEXT NOT NULL, body TEXT NOT NULL, alert_ids TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'pending', attempts INTEGER NOT NULL DEFAULT 0,
    parts_done INTEGER NOT NULL DEFAULT 0, next_attempt REAL NOT NULL, created REAL NOT NULL,
    due_since REAL NOT NULL, updated REAL NOT NULL, last_error TEXT NOT NULL DEFAULT '',
    severity TEXT NOT NULL DEFAULT 'warning'
);
"""
