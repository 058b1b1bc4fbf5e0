"""Threshold rules: fire once, hysteresis, pending `for`, repeat, cooldown, resolution."""

from __future__ import annotations

from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from .factories import balance, engine, rule


def low(**kw):
    settings = dict(
        type="threshold",
        on="balance.changed",
        currency="USDT",
        value="balance",
        below=Decimal(100),
        resolve_above=Decimal(150),
    )
    settings.update(kw)
    return rule("low", **settings)


def statuses(e, values, start=0.0, step=1.0):
    out = []
    for i, v in enumerate(values):
        out += [(v, a.status) for a in e.process(balance(v), start + i * step)]
    return out


def test_fires_once_and_resolves_past_the_hysteresis_line() -> None:
    """Below 100 fires once; 120 (between lines) changes nothing; 150 resolves."""
    e = engine(low(resolved_message="back to {{ dec(value) }}"))
    assert statuses(e, [200, 90, 80, 120, 95, 150, 149, 99]) == [
        (90, "firing"),
        (150, "resolved"),
        (99, "firing"),
    ]


def test_resolution_defaults_to_the_threshold_itself() -> None:
    """Without resolve_above the alert resolves once the value is back at `below`."""
    e = engine(low(resolve_above=None))
    assert statuses(e, [99, 100]) == [(99, "firing"), (100, "resolved")]


def test_above_threshold_with_resolve_below() -> None:
    """above = 1000 fires at 1001 and resolves at or below resolve_below = 900."""
    e = engine(low(below=None, resolve_above=None, above=Decimal(1000), resolve_below=Decimal(900)))
    assert statuses(e, [1000, 1001, 950, 900]) == [(1001, "firing"), (900, "resolved")]


def test_resolved_alert_uses_resolved_message_and_shares_key() -> None:
    """The resolution carries resolved_message and the same key as the firing alert."""
    e = engine(low(message="low: {{ value }}", resolved_message="ok: {{ value }}"))
    [firing] = e.process(balance(50), 1.0)
    [resolved] = e.process(balance(160), 2.0)
    assert (firing.body, resolved.body) == ("low: 50", "ok: 160")
    assert firing.key == resolved.key == "main/USDT"
    assert firing.id != resolved.id
    assert resolved.title.startswith("[main] RESOLVED low")


def test_keys_are_independent_per_account() -> None:
    """Each account has its own threshold state."""
    e = engine(low(), accounts=("main", "alt"))
    assert len(e.process(balance(50, account="main"), 1.0)) == 1
    assert len(e.process(balance(50, account="alt"), 2.0)) == 1


def test_pending_for_fires_only_if_breach_lasts() -> None:
    """With for = 5m, a dip that recovers within 5 minutes never fires; a lasting one does."""
    e = engine(low(for_=300))
    assert e.process(balance(50), 0.0) == []
    assert e.process(balance(120), 100.0) == []  # back above `below`: pending cancelled
    assert e.advance(400.0) == []
    assert e.process(balance(50), 500.0) == []
    assert e.next_deadline() == 800.0
    [alert] = e.advance(800.0)
    assert alert.status == "firing" and "for 5m" in alert.title


def test_repeat_resends_while_firing_and_stops_after_resolve() -> None:
    """repeat = 1h re-sends the firing alert hourly until it resolves."""
    e = engine(low(repeat=3600))
    e.process(balance(50), 0.0)
    first = e.advance(3600.0)
    second = e.advance(7200.0)
    assert [a.status for a in first + second] == ["firing", "firing"]
    assert first[0].id != second[0].id
    e.process(balance(200), 7300.0)
    assert e.advance(20000.0) == []


def test_cooldown_holds_back_a_flapping_threshold() -> None:
    """With cooldown = 10m, a second breach within 10 minutes of the first alert is held."""
    e = engine(low(cooldown=600))
    assert statuses(e, [50, 200, 50], step=60) == [(50, "firing"), (200, "resolved")]
    assert [a.status for a in e.process(balance(40), 700.0)] == ["firing"]


def test_value_expression_may_compute() -> None:
    """`value` can be any expression, e.g. a balance in thousands."""
    e = engine(low(value="balance / 1000", below=Decimal("0.1"), resolve_above=None))
    assert statuses(e, [200, 50]) == [(50, "firing")]


@given(st.lists(st.integers(min_value=0, max_value=300), max_size=40))
def test_hysteresis_never_fires_twice_without_a_resolve(values: list[int]) -> None:
    """Whatever the values, firing and resolved alerts alternate, starting with firing, and
    a firing alert is only ever for a value below 100, a resolution for one at least 150."""
    e = engine(low())
    seen = statuses(e, values)
    assert [s for _, s in seen] == ["firing", "resolved"] * (len(seen) // 2) + (
        ["firing"] if len(seen) % 2 else []
    )
    assert all(v < 100 for v, s in seen if s == "firing")
    assert all(v >= 150 for v, s in seen if s == "resolved")


def test_band_with_below_and_above() -> None:
    """With both lines, leaving the band either way fires, and coming back resolves."""
    e = engine(low(below=Decimal(10), resolve_above=None, above=Decimal(100)))
    assert statuses(e, [50, 5, 50, 150, 101, 100]) == [
        (5, "firing"),
        (50, "resolved"),
        (150, "firing"),
        (100, "resolved"),
    ]
