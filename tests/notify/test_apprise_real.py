"""AppriseNotifier and Delivery against real peers on 127.0.0.1 (SMTP, HTTP webhooks), and
against apprise's HTTP transport, patched, for Slack and Telegram whose hosts are fixed."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pytest
import trio

from alertd.config.model import Secret
from alertd.notify.apprise_notifier import AppriseNotifier
from alertd.notify.delivery import Delivery
from alertd.notify.notifier import Outgoing
from alertd.store.database import Database, db_path
from alertd.store.outbox import Notification, Outbox, notification_key

from .helpers import channel, make_config, wait_until
from .receivers import http_receiver, smtp_receiver

TG_TOKEN = "123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw"
SLACK_TOKENS = "T1JJ3T3L2/A1BRTD4JD/TIiajkdnlazkcOXrIdevi7FQ"
TB = Outgoing(title="t", body="b")


async def _queue(outbox: Outbox, name: str, urls: int, title: str, body: str) -> None:
    from alertd import clock

    now = clock.wall()
    await outbox.enqueue(
        [
            Notification(
                key=notification_key(name, i, [title]),
                channel=name,
                url_index=i,
                title=title,
                body=body,
                alert_ids=(title,),
                created=now,
            )
            for i in range(urls)
        ]
    )


@pytest.fixture
def real_outbox(tmp_path: Path) -> Outbox:
    return Outbox(Database(db_path(tmp_path)))


async def test_email_reaches_a_real_smtp_server() -> None:
    """An alert sent to a mailto:// URL arrives at an SMTP server with its subject and body."""
    notifier = AppriseNotifier()
    with smtp_receiver() as smtp, trio.fail_after(20):
        url = (
            f"mailto://alertd@example.com?smtp=127.0.0.1&port={smtp.port}"
            "&mode=insecure&to=trader@example.com"
        )
        result = await notifier.send(
            Secret(url),
            Outgoing(
                title="Order filled: buy 2 BTC_USDT", body="Filled at 43 000\nNotional 86 000 USDT"
            ),
        )
    assert result.ok, result.detail
    [message] = smtp.messages
    assert message["Subject"] == "Order filled: buy 2 BTC_USDT"
    assert smtp.envelopes == [("alertd@example.com", ["trader@example.com"])]
    body = message.get_body(("plain",))
    assert body is not None
    assert body.get_content().splitlines()[:2] == ["Filled at 43 000", "Notional 86 000 USDT"]


async def test_webhook_failing_three_times_arrives_exactly_once(real_outbox: Outbox) -> None:
    """A json:// receiver answering 500, 500, 500, then 200 gets the alert once, as JSON."""
    with http_receiver([500, 500, 500]) as hook:
        config = make_config(
            {"hook": channel(f"json://{hook.url}/alerts")}, retry_initial=0.05, retry_max=0.2
        )
        delivery = Delivery(config, real_outbox, AppriseNotifier())
        with trio.fail_after(30):
            async with trio.open_nursery() as nursery:
                await nursery.start(delivery.run)
                await _queue(real_outbox, "hook", 1, "Balance low", "USDT 12.5 < 100")
                await wait_until(lambda: len(hook.requests) == 4, step=0.02)
                await trio.sleep(1.0)  # time for a wrong fifth attempt
                nursery.cancel_scope.cancel()
    assert len(hook.requests) == 4
    assert {r.path for r in hook.requests} == {"/alerts"}
    payload = json.loads(hook.requests[-1].body)
    assert payload["title"] == "Balance low"
    assert payload["message"] == "USDT 12.5 < 100"
    [row] = await real_outbox.rows()
    assert (row.status, row.attempts) == ("delivered", 3)


async def test_hanging_receiver_does_not_delay_another_channel(real_outbox: Outbox) -> None:
    """While one webhook never answers, another channel's webhook gets its alert at once."""
    with http_receiver(hang=True) as stuck, http_receiver() as fine:
        config = make_config(
            {
                "stuck": channel(f"json://{stuck.url}/", timeout=20.0),
                "fine": channel(f"json://{fine.url}/"),
            }
        )
        delivery = Delivery(config, real_outbox, AppriseNotifier(workers=2))
        with trio.fail_after(30):
            async with trio.open_nursery() as nursery:
                await nursery.start(delivery.run)
                await _queue(real_outbox, "stuck", 1, "first", "to the stuck one")
                await wait_until(lambda: len(stuck.requests) == 1, step=0.02)
                start = trio.current_time()
                await _queue(real_outbox, "fine", 1, "second", "to the fine one")
                await wait_until(lambda: len(fine.requests) == 1, step=0.02)
                elapsed = trio.current_time() - start
                nursery.cancel_scope.cancel()
    assert elapsed < 2.0
    assert json.loads(fine.requests[0].body)["title"] == "second"


@pytest.mark.parametrize(("status", "recoverable"), [(401, False), (429, True), (503, True)])
async def test_failures_are_classified(status: int, recoverable: bool) -> None:
    """Rejected credentials are permanent; rate limits and server errors are worth a retry."""
    with http_receiver([status]) as hook, trio.fail_after(20):
        result = await AppriseNotifier().send(Secret(f"json://{hook.url}/x"), TB)
    assert not result.ok
    assert result.recoverable is recoverable
    assert str(status) in result.detail


async def test_secrets_stay_out_of_details_and_logs(caplog: pytest.LogCaptureFixture) -> None:
    """A failing URL's password and token appear neither in the result nor in any log line."""
    caplog.set_level(logging.DEBUG)
    with http_receiver([500]) as hook, trio.fail_after(20):
        result = await AppriseNotifier().send(
            Secret(f"json://bob:hunter2secret@{hook.url}/hook/tok3nVALUE"), TB
        )
    assert not result.ok
    for secret in ("hunter2secret", "tok3nVALUE"):
        assert secret not in result.detail
        assert secret not in caplog.text


async def test_invalid_url_is_a_permanent_failure() -> None:
    """A URL apprise does not understand fails at once, not recoverable, with the scheme named."""
    with trio.fail_after(10):
        result = await AppriseNotifier().send(Secret("nosuchservice://abc"), TB)
    assert not result.ok
    assert not result.recoverable
    assert "nosuchservice" in result.detail


async def test_console_plugin_prints_to_stdout(capsys: pytest.CaptureFixture[str]) -> None:
    """console:// prints the title and body to the terminal."""
    with trio.fail_after(10):
        result = await AppriseNotifier().send(
            Secret("console://"), Outgoing(title="Order filled", body="buy 1 BTC_USDT at 100")
        )
    assert result.ok
    out = capsys.readouterr().out
    assert "Order filled" in out
    assert "buy 1 BTC_USDT at 100" in out


async def test_slack_request_is_exact(transport: list[dict[str, Any]]) -> None:
    """A slack:// webhook URL becomes one POST to hooks.slack.com with the alert as JSON,
    coloured by its severity (critical: apprise's failure red)."""
    with trio.fail_after(10):
        result = await AppriseNotifier().send(
            Secret(f"slack://{SLACK_TOKENS}/#alerts"),
            Outgoing(title="Order filled", body="buy 2 BTC_USDT\nat 43 000", severity="critical"),
            service_timeout=7.0,
        )
    assert result.ok, result.detail
    [call] = transport
    assert call["method"] == "POST"
    assert call["url"] == f"https://hooks.slack.com/services/{SLACK_TOKENS}"
    assert call["timeout"] == (7.0, 7.0)
    body = json.loads(call["data"])
    [attachment] = body["attachments"]
    assert isinstance(attachment.pop("ts"), float)
    icon = (
        "https://github.com/caronc/apprise/raw/master/apprise/assets/themes/default/"
        "apprise-failure-72x72.png"
    )
    assert body == {
        "mrkdwn": False,
        "attachments": [
            {
                "title": "Order filled",
                "text": "buy 2 BTC_USDT\nat 43 000",
                "color": "#A32037",
                "footer_icon": icon,
                "footer": "Apprise",
            }
        ],
        "icon_url": icon,
        "channel": "#alerts",
    }


async def test_telegram_request_is_exact(transport: list[dict[str, Any]]) -> None:
    """A tgram:// URL becomes one POST to the bot API's sendMessage with the chat and text."""
    with trio.fail_after(10):
        result = await AppriseNotifier().send(
            Secret(f"tgram://{TG_TOKEN}/12345"),
            Outgoing(title="Price alert", body="BTC_USDT above 50 000 & rising"),
        )
    assert result.ok, result.detail
    [call] = transport
    assert call["method"] == "POST"
    assert call["url"] == f"https://api.telegram.org/bot{TG_TOKEN}/sendMessage"
    assert json.loads(call["data"]) == {
        "chat_id": 12345,
        "disable_notification": False,
        "disable_web_page_preview": True,
        "parse_mode": "HTML",
        "text": "<b>Price alert</b>\r\nBTC_USDT above 50 000 &amp; rising",
    }


async def test_long_telegram_message_is_split_into_parts(
    transport: list[dict[str, Any]], real_outbox: Outbox
) -> None:
    """A 9 000-character alert for Telegram goes out as numbered sendMessage calls that each
    fit in 4096 characters and together carry every line."""
    lines = [f"fill {i:03d}: buy 0.01 BTC_USDT at 43 000 <maker>" + "." * 30 for i in range(120)]
    body = "\n".join(lines)
    assert len(body) > 9000
    config = make_config({"tg": channel(f"tgram://{TG_TOKEN}/12345")})
    delivery = Delivery(config, real_outbox, AppriseNotifier())
    with trio.fail_after(30):
        await _queue(real_outbox, "tg", 1, "Fills today", body)
        left = await delivery.drain(trio.current_time() + 20)
    assert left == 0
    texts = [json.loads(c["data"])["text"] for c in transport]
    assert len(texts) == 3
    assert all(c["url"].endswith("/sendMessage") for c in transport)
    assert all(len(t) <= 4096 for t in texts)
    for i, text in enumerate(texts, start=1):
        assert text.startswith(f"<b>Fills today ({i}/3)</b>\r\n")
    received = "\n".join(t.split("\r\n", 1)[1] for t in texts)
    unescaped = received.replace("\r\n", "\n").replace("&lt;", "<").replace("&gt;", ">")
    assert unescaped == body


@pytest.mark.parametrize(
    ("severity", "apprise_type"),
    [("info", "info"), ("warning", "warning"), ("critical", "failure")],
)
async def test_severity_reaches_the_service_as_the_message_type(
    severity: str, apprise_type: str
) -> None:
    """A rule's severity is what the service shows (apprise's type: colour, icon)."""
    with http_receiver([200]) as hook, trio.fail_after(20):
        result = await AppriseNotifier().send(
            Secret(f"json://{hook.url}/x"), Outgoing(title="t", body="b", severity=severity)
        )
    assert result.ok
    assert json.loads(hook.requests[0].body)["type"] == apprise_type
