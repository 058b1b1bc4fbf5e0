"""A notification sent longer than ``[dispatch] late_after`` after its alert was made starts
with one line saying how late it is and when the alert is from, in ``[daemon] timezone``."""

from __future__ import annotations

import json
import logging
import re
from datetime import UTC, datetime
from pathlib import Path

import attrs
import pytest
import trio

from alertd.config.model import Config, Duration
from alertd.messages.lateness import late_marker
from alertd.notify.apprise_notifier import AppriseNotifier
from alertd.notify.delivery import Delivery
from alertd.store.database import Database, db_path
from alertd.store.outbox import Notification, Outbox, notification_key

from .helpers import channel, make_config, wait_until
from .receivers import http_receiver

MADE = datetime(2026, 12, 1, 16, 52, 11, tzinfo=UTC).timestamp()  # 17:52:11 in Berlin (CET)


def berlin(config: Config, late_after: float = 300.0) -> Config:
    return attrs.evolve(
        config,
        daemon=attrs.evolve(config.daemon, timezone="Europe/Berlin"),
        dispatch=attrs.evolve(config.dispatch, late_after=Duration(late_after)),
    )


async def test_a_message_sent_after_an_outage_says_how_late_it_is(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A webhook that refused the first attempt and took the retry 12 minutes later gets the
    body with "(delivered 12m late: the alert is from 17:52:11 CET)" first; the attempt in
    time had no such line; the delivery line says late=12m."""
    shift = [0.0]  # seconds the wall clock jumped (the outage), on top of trio's time
    start = trio.current_time()

    def wall() -> float:
        return MADE + shift[0] + trio.current_time() - start

    caplog.set_level(logging.INFO)
    with http_receiver([500]) as hook, trio.fail_after(20):
        config = berlin(
            make_config({"hook": channel(f"json://{hook.url}/hook")}, retry_initial=0.2)
        )
        db = Database(db_path(tmp_path))
        outbox = Outbox(db)
        delivery = Delivery(config, outbox, AppriseNotifier(), wall=wall)
        row = Notification(
            key=notification_key("hook", 0, ["a1"]),
            channel="hook",
            url_index=0,
            title="filled main 42",
            body="buy 1 BTC_USDT filled at 100",
            created=MADE,
        )
        try:
            async with trio.open_nursery() as nursery:
                await nursery.start(delivery.run)
                await outbox.enqueue([row])
                await wait_until(lambda: len(hook.requests) == 1, step=0.02)
                shift[0] = 12 * 60  # the service comes back 12 minutes later
                await wait_until(lambda: delivery.statistics().delivered == 1, step=0.02)
                nursery.cancel_scope.cancel()
        finally:
            db.close()
    first, retry = (json.loads(r.body)["message"] for r in hook.requests)
    assert first == "buy 1 BTC_USDT filled at 100"
    marker, body = retry.splitlines()
    # 12 minutes and the test's own second or two
    assert re.fullmatch(r"\(delivered 12m( \ds)? late: the alert is from 17:52:11 CET\)", marker)
    assert body == "buy 1 BTC_USDT filled at 100"
    [sent] = [r.getMessage() for r in caplog.records if r.getMessage().startswith("delivery.sent")]
    assert re.search(r" late=12m(\ds)?$", sent), sent


def test_the_marker_names_the_day_when_the_alert_is_from_another_one() -> None:
    """An alert from yesterday is shown with its date; one in time, or with late_after 0,
    gets no marker at all."""
    next_day = MADE + 20 * 3600
    assert late_marker(MADE, next_day, 300.0, "Europe/Berlin") == (
        "(delivered 20h late: the alert is from 2026-12-01 17:52:11 CET)"
    )
    assert late_marker(MADE, MADE + 299, 300.0, "Europe/Berlin") is None
    assert late_marker(MADE, next_day, 0.0, "Europe/Berlin") is None


async def test_a_late_digest_says_how_late_its_oldest_notification_is(tmp_path: Path) -> None:
    """Three notifications 12 minutes old, behind a rate limit of one a minute, go out as one
    digest whose first line says how late the oldest is."""
    with http_receiver() as hook, trio.fail_after(20):
        limited = channel(f"json://{hook.url}/hook", rate_limit="1/1m")
        config = berlin(make_config({"hook": limited}))
        db = Database(db_path(tmp_path))
        outbox = Outbox(db)
        delivery = Delivery(config, outbox, AppriseNotifier(), wall=lambda: MADE + 12 * 60)
        rows = [
            Notification(
                key=notification_key("hook", 0, [f"a{i}"]),
                channel="hook",
                url_index=0,
                title=f"filled main {i}",
                body=f"buy {i} BTC_USDT",
                created=MADE + i,
            )
            for i in range(3)
        ]
        try:
            async with trio.open_nursery() as nursery:
                await outbox.enqueue(rows)
                await nursery.start(delivery.run)
                await wait_until(lambda: delivery.statistics().delivered == 3, step=0.02)
                nursery.cancel_scope.cancel()
        finally:
            db.close()
    [request] = hook.requests
    first, *rest = json.loads(request.body)["message"].splitlines()
    assert first == "(delivered 12m late: the alert is from 17:52:11 CET)"
    assert "\u2022 filled main 2" in rest
