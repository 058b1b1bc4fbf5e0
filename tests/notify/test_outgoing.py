"""What a service is told besides the text: a resolved notice as a success, severity as the
service's own urgency (Telegram, ntfy, Pushover), the channel's body format through
apprise's conversion; and quiet hours that let critical alerts through."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import trio
import trio.testing

from alertd import clock as wall_clock
from alertd.config.model import QuietHours, Secret
from alertd.notify.apprise_notifier import AppriseNotifier
from alertd.notify.delivery import Delivery
from alertd.notify.notifier import Outgoing
from alertd.notify.recording import RecordingNotifier
from alertd.store.outbox import Notification, Outbox, notification_key

from .helpers import channel, dispatch_and_deliver, make_alert, make_config
from .receivers import http_receiver

TG_TOKEN = "123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw"
SLACK_TOKENS = "T1JJ3T3L2/A1BRTD4JD/TIiajkdnlazkcOXrIdevi7FQ"
PUSHOVER = "pover://uQiRzpo4DXghDmr9QzzfQu27cmVRsG@azGDORePK8gMaC0QOYAMyEEuzJnyUi"
FILLED = "**BTC_USDT buy 0.5 @ 4003.9**\nprice: 4003.9"


async def _send(url: str, message: Outgoing) -> None:
    with trio.fail_after(20):
        result = await AppriseNotifier().send(Secret(url, source="test"), message)
    assert result.ok, result.detail


async def test_telegram_info_in_markdown_is_silent_with_a_bold_headline(
    transport: list[dict[str, Any]],
) -> None:
    """An info alert to a markdown Telegram channel arrives without a sound, parsed as
    Markdown, its title and headline bold."""
    await _send(
        f"tgram://{TG_TOKEN}/12345",
        Outgoing(title="[px] filled", body=FILLED, severity="info", body_format="markdown"),
    )
    [call] = transport
    assert json.loads(call["data"]) == {
        "chat_id": 12345,
        "disable_notification": True,
        "disable_web_page_preview": True,
        "parse_mode": "MARKDOWN",
        "text": "*[px] filled*\n*BTC_USDT buy 0.5 @ 4003.9*\nprice: 4003.9",
    }


@pytest.mark.parametrize(("severity", "silent"), [("warning", False), ("critical", False)])
async def test_telegram_warnings_and_criticals_ring(
    transport: list[dict[str, Any]], severity: str, silent: bool
) -> None:
    """Only info is silent on Telegram; warning and critical alerts make a sound."""
    await _send(f"tgram://{TG_TOKEN}/12345", Outgoing(title="t", body="b", severity=severity))
    assert json.loads(transport[0]["data"])["disable_notification"] is silent


async def test_a_url_that_sets_the_urgency_itself_keeps_it(
    transport: list[dict[str, Any]],
) -> None:
    """``?silent=no`` in the channel URL wins over the info severity."""
    await _send(
        f"tgram://{TG_TOKEN}/12345?silent=no", Outgoing(title="t", body="b", severity="info")
    )
    assert json.loads(transport[0]["data"])["disable_notification"] is False


async def test_slack_markdown_shows_bold(transport: list[dict[str, Any]]) -> None:
    """A markdown Slack channel gets mrkdwn on and the headline in Slack's bold."""
    await _send(
        f"slack://{SLACK_TOKENS}/#alerts",
        Outgoing(title="[px] filled", body=FILLED, body_format="markdown"),
    )
    body = json.loads(transport[0]["data"])
    assert body["mrkdwn"] is True
    assert body["attachments"][0]["text"] == "*BTC_USDT buy 0.5 @ 4003.9*\nprice: 4003.9"


async def test_html_channel_passes_html_through(transport: list[dict[str, Any]]) -> None:
    """An html Telegram channel's body keeps its tags (not escaped as plain text would be)."""
    await _send(
        f"tgram://{TG_TOKEN}/12345",
        Outgoing(title="t", body="<b>BTC</b> filled", body_format="html"),
    )
    assert json.loads(transport[0]["data"])["text"] == "<b>t</b>\r\n<b>BTC</b> filled"


@pytest.mark.parametrize(
    ("message", "priority"),
    [
        (Outgoing(title="t", body="b", severity="info"), "-1"),
        (Outgoing(title="t", body="b", severity="warning"), "0"),
        (Outgoing(title="t", body="b", severity="critical"), "1"),
        (Outgoing.at_level("t", "b", "resolved"), "-1"),
    ],
)
async def test_pushover_priority_follows_severity(
    transport: list[dict[str, Any]], message: Outgoing, priority: str
) -> None:
    """Pushover gets -1 (no sound) for info and resolved notices, 0 for warning, 1 for
    critical."""
    await _send(PUSHOVER, message)
    [call] = transport
    assert call["url"] == "https://api.pushover.net/1/messages.json"
    assert call["data"] == {
        "token": "azGDORePK8gMaC0QOYAMyEEuzJnyUi",
        "user": "uQiRzpo4DXghDmr9QzzfQu27cmVRsG",
        "priority": priority,
        "title": "t",
        "message": "b",
        "sound": "pushover",
        "device": "ALL_DEVICES",
    }


@pytest.mark.parametrize(
    ("severity", "header"), [("info", "low"), ("warning", None), ("critical", "high")]
)
async def test_ntfy_priority_reaches_a_real_server(severity: str, header: str | None) -> None:
    """A local ntfy server gets X-Priority low for info, none (its default) for warning,
    high for critical."""
    with http_receiver() as ntfy:
        await _send(f"ntfy://{ntfy.url}/alerts", Outgoing(title="t", body="b", severity=severity))
    [request] = ntfy.requests
    assert request.headers.get("X-Priority") == header
    assert json.loads(request.body) == {"topic": "alerts", "title": "t", "message": "b"}


@pytest.mark.parametrize(
    ("message", "apprise_type"),
    [
        (Outgoing.at_level("t", "b", "resolved"), "success"),
        (Outgoing(title="t", body="b", severity="critical", status="resolved"), "success"),
        (Outgoing.at_level("t", "b", "critical"), "failure"),
        (Outgoing.at_level("t", "b", "warning"), "warning"),
    ],
)
async def test_a_resolved_notice_is_a_success(message: Outgoing, apprise_type: str) -> None:
    """A webhook is told a resolution is a success whatever its severity; a firing alert is
    a warning or a failure by severity."""
    with http_receiver() as hook:
        await _send(f"json://{hook.url}/x", message)
    assert json.loads(hook.requests[0].body)["type"] == apprise_type


async def test_a_resolved_alert_reaches_the_webhook_as_a_success(tmp_path: Path) -> None:
    """Dispatched and delivered through the outbox, a firing critical alert is a failure and
    its resolution a success, each with its own title."""
    with http_receiver() as hook:
        config = make_config({"hook": channel(f"json://{hook.url}/x")}, default_channel="hook")
        alerts = [
            make_alert(1, severity="critical", key="a", title="[px] low USDT"),
            make_alert(2, severity="critical", key="b", status="resolved", title="[px] RESOLVED"),
        ]
        with trio.fail_after(60):
            await dispatch_and_deliver(
                tmp_path, config, alerts, 1_767_614_400.0, AppriseNotifier(), sends=2
            )
    sent = [json.loads(r.body) for r in hook.requests]
    assert [(s["title"], s["type"]) for s in sent] == [
        ("[px] low USDT", "failure"),
        ("[px] RESOLVED", "success"),
    ]


async def test_quiet_hours_let_critical_alerts_through(tmp_path: Path) -> None:
    """Inside a night window with ``let_through = ["critical"]``, the critical alert goes out
    at once and the warning waits for the morning."""
    night = QuietHours(start="22:00", end="07:00", let_through=["critical"])
    config = make_config({"me": channel("fake://me")}, default_channel="me", quiet_hours=[night])
    at_23 = datetime(2026, 1, 5, 23, 0, tzinfo=UTC).timestamp()
    notifier = RecordingNotifier()
    alerts = [
        make_alert(1, severity="warning", key="a", title="warning at night"),
        make_alert(2, severity="critical", key="b", title="critical at night"),
    ]
    with trio.fail_after(60):
        delivery = await dispatch_and_deliver(tmp_path, config, alerts, at_23, notifier, sends=1)
    assert [m.title for m in notifier.sent] == ["critical at night"]
    assert delivery.statistics().delivered == 1


@pytest.mark.parametrize(
    ("levels", "digest"),
    [
        (["resolved", "resolved", "resolved"], ("info", "resolved")),
        (["resolved", "info", "resolved"], ("info", "firing")),
        (["resolved", "critical", "warning"], ("critical", "firing")),
    ],
)
async def test_a_digest_is_resolved_only_when_all_its_rows_are(
    outbox: Outbox, clock: trio.testing.MockClock, levels: list[str], digest: tuple[str, str]
) -> None:
    """Under a rate limit, the digest of three rows is a resolved notice only when all of
    them are; else it is firing, at the highest severity among the others."""
    config = make_config({"tg": channel("fake://tg", rate_limit="1/1m")})
    notifier = RecordingNotifier()
    now = wall_clock.wall()
    await outbox.enqueue(
        [
            Notification(
                key=notification_key("tg", 0, [f"a{n}"]),
                channel="tg",
                url_index=0,
                title=f"Alert {n}",
                body="b",
                alert_ids=(f"a{n}",),
                created=now,
                severity=level,
            )
            for n, level in enumerate(levels)
        ]
    )
    with trio.fail_after(3600):
        async with trio.open_nursery() as nursery:
            await nursery.start(Delivery(config, outbox, notifier).run)
            await trio.sleep(600)
            nursery.cancel_scope.cancel()
    [digest_sent] = notifier.sent
    assert "3" in digest_sent.title  # one digest of the three rows
    assert (digest_sent.message.severity, digest_sent.message.status) == digest
