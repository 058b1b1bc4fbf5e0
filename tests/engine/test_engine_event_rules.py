"""Event rules: matching (kind, globs, filters, where), keys, ids, labels, text, cooldown."""

from __future__ import annotations

import logging

import attrs
import pytest

from .factories import D, balance, disconnected, engine, filled, placed, rule, trade


def test_matching_event_makes_one_alert_with_default_text() -> None:
    """An order.filled rule alerts once with the documented default title and labels."""
    e = engine(rule("filled", on="order.filled", notify=["me"], severity="info"))
    [alert] = e.process(filled(), 1.0)
    assert alert.title == "[main] order.filled BTC_USDT buy 0.5 @ 4003.9"
    assert alert.status == "firing" and alert.rule == "filled"
    assert alert.key == "main/BTC_USDT/1"
    assert alert.channels == ("me",)
    assert alert.event_kind == "order.filled" and alert.account == "main"
    assert dict(alert.labels) == {
        "rule": "filled",
        "severity": "info",
        "account": "main",
        "symbol": "BTC_USDT",
        "side": "buy",
        "kind": "order.filled",
    }
    assert "notional: 2001.95" in alert.body


def test_where_filters_with_decimal_comparison() -> None:
    """`where = "notional > 1000 and side == 'buy'"` picks only large buys."""
    e = engine(rule(on="order.filled", where="notional > 1000 and side == 'buy'"))
    assert e.process(filled("1", amount="0.1"), 1.0) == []  # notional 400.39
    assert e.process(filled("2", side="sell"), 2.0) == []
    assert len(e.process(filled("3"), 3.0)) == 1


def test_glob_and_attribute_filters() -> None:
    """`order.*` with account, symbol (any spelling) and side filters match only their events."""
    e = engine(
        rule(on="order.*", account=["main", "alt"], symbol="btc-usdt", side="buy"),
        accounts=("main", "alt", "other"),
    )
    assert len(e.process(placed("1"), 1.0)) == 1
    assert len(e.process(filled("2", account="alt"), 2.0)) == 1
    assert e.process(filled("3", account="other"), 3.0) == []
    assert e.process(filled("4", symbol="ETH_USDT"), 4.0) == []
    assert e.process(filled("5", side="sell"), 5.0) == []
    assert e.process(balance(1), 6.0) == []


def test_currency_filter() -> None:
    """A currency filter on balance events matches that currency only."""
    e = engine(rule(on="balance.changed", currency="usdt"))
    assert e.process(balance(1, currency="BTC"), 1.0) == []
    assert len(e.process(balance(1, currency="USDT"), 2.0)) == 1


def test_where_error_means_no_match_and_is_logged_once(caplog: pytest.LogCaptureFixture) -> None:
    """`change > 0` on a balance with no change (None) is no match, logged once per rule."""
    e = engine(rule(on="balance.changed", where="change > 0"))
    with caplog.at_level(logging.WARNING):
        assert e.process(balance(1), 1.0) == []
        assert e.process(balance(2), 2.0) == []
    assert len([r for r in caplog.records if "engine.where_error" in r.message]) == 1
    assert len(e.process(balance(3, change=1), 3.0)) == 1


def test_templates_render_with_helpers() -> None:
    """Title and body templates see event fields and the helpers."""
    e = engine(
        rule(
            on="order.filled",
            title="{{ side | upper }} {{ symbol }}",
            message="{{ dec(notional, 2) }} at {{ time | localtime('%H:%M %Z') }} ({{ key }})",
        ),
        timezone="Europe/Berlin",
    )
    [alert] = e.process(filled(), 1.0)
    assert alert.title == "BUY BTC_USDT"
    assert alert.body == "2001.95 at 13:00 CET (main/BTC_USDT/1)"


def test_template_failing_at_render_still_alerts(caplog: pytest.LogCaptureFixture) -> None:
    """A message dividing by zero yields the alert with a fallback body naming the error."""
    e = engine(rule(on="balance.changed", message="{{ balance / 0 }}"))
    with caplog.at_level(logging.WARNING):
        [alert] = e.process(balance(5), 1.0)
    assert "template failed" in alert.body and "DivisionByZero" in alert.body
    assert "balance: 5" in alert.body
    assert any("engine.template_error" in r.message for r in caplog.records)


def test_key_template_and_cooldown() -> None:
    """With key = account, a cooldown holds back alerts for that account only."""
    e = engine(rule(on="order.filled", key="{{ account }}", cooldown=60), accounts=())
    assert len(e.process(filled("1"), 0.0)) == 1
    assert e.process(filled("2"), 30.0) == []
    assert len(e.process(filled("3", account="alt"), 31.0)) == 1
    assert len(e.process(filled("4"), 61.0)) == 1


def test_alert_id_is_deterministic_and_ignores_receive_time() -> None:
    """The same event seen again (e.g. replayed after reconnect) gets the same alert id."""
    first = engine(rule(on="order.filled")).process(filled(), 1.0)[0]
    again = attrs.evolve(filled(), received=filled().received.replace(hour=23))
    second = engine(rule(on="order.filled")).process(again, 99.0)[0]
    other = engine(rule(on="order.filled")).process(filled(amount="0.6"), 1.0)[0]
    assert first.id == second.id != other.id


def test_alerts_of_one_event_keep_config_order() -> None:
    """Two matching rules alert in the order they appear in the config."""
    e = engine(rule("b", on="trade"), rule("a", on="trade", symbol="BTC_USDT"), rule("c"))
    assert [a.rule for a in e.process(trade(), 1.0)] == ["b", "a", "c"]


def test_stream_events_alert_with_reason() -> None:
    """A stream.disconnected rule names the stream and reason in its title, in words."""
    [alert] = engine(rule(on="stream.*")).process(disconnected(), 1.0)
    assert alert.title == "[main] pinfo: connection lost: closed 1006"


def test_non_matching_rules_cost_no_where_evaluation() -> None:
    """Rules for other accounts or kinds are never evaluated: their broken where never runs."""
    e = engine(
        rule("other", on="trade", account="alt", where="price / 0 > 1"),
        rule("mine", on="trade", account="main", where="price > 1"),
        accounts=("main", "alt"),
    )
    assert [a.rule for a in e.process(trade(price=D(5)), 1.0)] == ["mine"]


def test_cooldown_memory_stays_bounded() -> None:
    """Cooldown entries that can no longer suppress anything are swept."""
    e = engine(rule(on="order.filled", cooldown=60))
    for i in range(10_000):
        e.process(filled(str(i)), float(i))
    [stats] = e.statistics().rules
    assert stats.cooldowns <= 2048
