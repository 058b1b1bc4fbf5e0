"""Rate rules: N matching events within a window, per key, one alert per burst."""

from __future__ import annotations

from .factories import engine, insufficient, rule


def nsf(**kw):
    return rule("nsf", type="rate", on="funds.insufficient", count=3, within=600, **kw)


def test_three_within_ten_minutes_fire_once() -> None:
    """Three funds.insufficient within 10 minutes on one account make exactly one alert."""
    e = engine(nsf())
    assert e.process(insufficient(order_id="1"), 0.0) == []
    assert e.process(insufficient(order_id="2"), 200.0) == []
    [alert] = e.process(insufficient(order_id="3"), 400.0)
    assert alert.key == "main"
    assert alert.title == "[main] nsf: 3 x funds.insufficient within 10m (main)"
    assert e.process(insufficient(order_id="4"), 450.0) == []  # a new burst starts afresh


def test_events_outside_the_window_do_not_count() -> None:
    """Three events spread over more than the window never fire."""
    e = engine(nsf())
    out = [e.process(insufficient(order_id=str(i)), t) for i, t in enumerate([0, 400, 700, 1200])]
    assert out == [[], [], [], []]


def test_windows_are_per_key() -> None:
    """Two accounts' events do not add up."""
    e = engine(nsf(), accounts=("main", "alt"))
    for t, acct in [(0, "main"), (1, "alt"), (2, "main"), (3, "alt")]:
        assert e.process(insufficient(account=acct), float(t)) == []
    assert len(e.process(insufficient(account="main"), 4.0)) == 1


def test_cooldown_holds_back_the_next_burst() -> None:
    """With cooldown = 1h, a second burst within the hour is not alerted."""
    e = engine(nsf(cooldown=3600))
    alerts = []
    for t in [0, 1, 2, 10, 11, 12, 4000, 4001, 4002]:
        alerts += e.process(insufficient(), float(t))
    assert len(alerts) == 2


def test_rate_message_sees_count_and_window() -> None:
    """Rate templates can use `seen`, `count` and `within`."""
    e = engine(nsf(message="{{ seen }}/{{ count }} in {{ duration(within) }}"))
    for t in (0.0, 1.0):
        e.process(insufficient(), t)
    assert e.process(insufficient(), 2.0)[0].body == "3/3 in 10m"


def test_memory_stays_bounded_with_many_keys() -> None:
    """Windows and cooldowns of keys long gone are swept, so state does not grow forever."""
    e = engine(nsf(key="{{ order_id }}", cooldown=60))
    for i in range(10_000):
        e.process(insufficient(order_id=str(i)), float(i))
    [stats] = e.statistics().rules
    assert stats.keys <= 2048 and stats.cooldowns <= 2048
