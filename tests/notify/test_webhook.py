"""alertd's structured webhook (``alertd://``): the whole notification as JSON, each alert
with its rule, status, severity, labels, the event's fields and text, POSTed to a real HTTP
receiver."""

from __future__ import annotations

import json
from pathlib import Path

import attrs
import trio

from alertd.config.model import Secret
from alertd.notify.apprise_notifier import AppriseNotifier
from alertd.notify.notifier import Outgoing

from .helpers import channel, dispatch_and_deliver, make_alert, make_config
from .receivers import http_receiver

LABELS = {"rule": "filled", "account": "main", "symbol": "BTC_USDT", "side": "buy"}


async def test_the_webhook_gets_every_alert_of_a_notification(tmp_path: Path) -> None:
    """Through dispatch and delivery, a grouped message of a firing and a resolved alert
    reaches the receiver as one JSON document carrying both alerts."""
    with http_receiver() as hook:
        config = make_config(
            {"hook": channel(f"alertd://{hook.url}/alerts")},
            default_channel="hook",
            group_wait=1,
        )
        fields = {"notional": "2001.95", "price": "4003.9", "time": "2026-01-05T12:00:01+00:00"}
        alerts = [
            attrs.evolve(make_alert(1, severity="critical", labels=LABELS), fields=fields),
            make_alert(2, status="resolved", labels=LABELS),
        ]
        with trio.fail_after(60):
            await dispatch_and_deliver(
                tmp_path, config, alerts, 1_767_614_400.0, AppriseNotifier(), sends=1
            )
    [request] = hook.requests
    assert request.path.startswith("/alerts")
    assert request.headers["Content-Type"] == "application/json"
    document = json.loads(request.body)
    assert document["version"] == 1
    assert (document["status"], document["severity"]) == ("firing", "critical")
    assert document["title"] == "2 alerts: filled (main/BTC_USDT)"
    assert document["alerts"] == [
        {
            "id": "alert-1",
            "rule": "filled",
            "key": "main/BTC_USDT",
            "status": "firing",
            "severity": "critical",
            "account": "main",
            "kind": "order.filled",
            "labels": LABELS,
            "created": "2026-01-05T12:00:01+00:00",
            "title": "Order 1 filled",
            "message": "buy 1 BTC_USDT filled at 100",
            "fields": fields,  # the event's, exact: through the state database and back
        },
        {
            "id": "alert-2",
            "rule": "filled",
            "key": "main/BTC_USDT",
            "status": "resolved",
            "severity": "warning",
            "account": "main",
            "kind": "order.filled",
            "labels": LABELS,
            "created": "2026-01-05T12:00:02+00:00",
            "title": "Order 2 filled",
            "message": "buy 2 BTC_USDT filled at 100",
            "fields": {},
        },
    ]


async def test_a_long_message_is_one_document() -> None:
    """A 100 000-character message is not split: one request, the whole text in it."""
    body = "fill\n" * 20_000
    with http_receiver() as hook, trio.fail_after(20):
        notifier = AppriseNotifier()
        url = Secret(f"alertd://{hook.url}/x")
        assert notifier.limits(url).body is None
        result = await notifier.send(url, Outgoing(title="t", body=body))
    assert result.ok, result.detail
    [request] = hook.requests
    assert json.loads(request.body)["message"] == body


async def test_a_refusing_receiver_is_a_failure_worth_retrying_or_not() -> None:
    """A 503 is worth a retry, a 404 is not; neither is reported as delivered."""
    with http_receiver([503, 404]) as hook, trio.fail_after(20):
        url = Secret(f"alertd://{hook.url}/x")
        busy = await AppriseNotifier().send(url, Outgoing(title="t", body="b"))
        missing = await AppriseNotifier().send(url, Outgoing(title="t", body="b"))
    assert (busy.ok, busy.recoverable) == (False, True)
    assert (missing.ok, missing.recoverable) == (False, False)
    assert "404" in missing.detail
