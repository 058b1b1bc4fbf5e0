"""An alert carries its event's fields and its rule type's values as JSON values (what the
structured webhook hands downstream), never the template helpers."""

from __future__ import annotations

import json

from .factories import balance, engine, filled, rule


def test_a_fill_alert_carries_the_events_fields_exactly() -> None:
    """Amounts are exact decimal strings, times ISO 8601, missing values null; no helper
    (dec, localtime, ...) and nothing the alert says elsewhere (status, rule) is among them."""
    e = engine(rule("filled", on="order.filled", notify=["me"]))
    [alert] = e.process(filled(), 1.0)
    fields = dict(alert.fields)
    assert fields["notional"] == "2001.95"
    assert fields["price"] == "4003.9"
    assert fields["time"] == "2026-03-01T12:00:00+00:00"
    assert fields["slippage"] is None
    assert fields["kind"] == "order.filled"
    assert not {"dec", "num", "localtime", "D", "status", "rule", "raw"} & set(fields)
    assert json.loads(json.dumps(fields)) == fields


def test_a_threshold_alert_carries_its_value_and_threshold() -> None:
    """What the rule type adds (value, threshold) is there beside the event's fields."""
    e = engine(
        rule(
            "low", type="threshold", on="balance.changed", value="balance", below=10, notify=["me"]
        )
    )
    [alert] = e.process(balance(5), 1.0)
    assert (alert.fields["value"], alert.fields["threshold"]) == ("5", 10)
    assert alert.fields["currency"] == "USDT"
