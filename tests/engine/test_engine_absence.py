"""Absence rules: silence for `after`, per key, declared accounts, repeat and resolution."""

from __future__ import annotations

from alertd.engine import compile_rules

from .factories import balance, engine, rule, trade


def quiet(**kw):
    return rule("quiet", type="absence", on="balance.changed", after=3600, **kw)


def test_declared_account_fires_when_never_heard_from() -> None:
    """An account in the config that sends nothing for `after` gets an alert."""
    e = engine(quiet(), accounts=("main",))
    e.start(0.0)
    assert e.next_deadline() == 3600.0
    [alert] = e.advance(3600.0)
    assert alert.key == "main" and alert.status == "firing"
    assert "never seen since start" in alert.title


def test_events_push_the_deadline_and_resolve() -> None:
    """Each event resets the timer; after a firing, the next event resolves it."""
    e = engine(quiet(resolved_message="back after {{ duration(silent_for) }}"), accounts=())
    assert e.process(balance(1), 0.0) == []
    assert e.advance(3000.0) == []
    assert e.process(balance(2), 3000.0) == []
    assert e.advance(6599.0) == []
    [firing] = e.advance(6600.0)
    assert firing.title == "[main] quiet: no balance.changed for 1h (main)"
    assert e.advance(20000.0) == []  # fires once
    [resolved] = e.process(balance(3), 20000.0)
    assert resolved.status == "resolved" and resolved.body == "back after 4h 43m"


def test_rule_account_list_declares_keys() -> None:
    """`account = ["a", "b"]` watches exactly those two accounts from the start."""
    e = engine(quiet(account=["a", "b"]), accounts=("main", "a", "b"))
    e.start(0.0)
    assert sorted(a.key for a in e.advance(3600.0)) == ["a", "b"]


def test_market_feeds_are_keyed_per_symbol() -> None:
    """For trades the key is account/symbol; declared for each listed symbol."""
    e = engine(
        rule("feed", type="absence", on="trade", symbol=["BTC_USDT", "ETH_USDT"], after=60),
        accounts=("main",),
    )
    e.start(0.0)
    e.process(trade(symbol="BTC_USDT"), 30.0)
    assert [a.key for a in e.advance(60.0)] == ["main/ETH_USDT"]
    assert [a.key for a in e.advance(90.0)] == ["main/BTC_USDT"]


def test_repeat_while_silent() -> None:
    """repeat = 2h re-sends the absence alert every two hours while silent."""
    e = engine(quiet(repeat=7200), accounts=("main",))
    e.start(0.0)
    assert len(e.advance(3600.0)) == 1
    assert len(e.advance(3600.0 + 7200)) == 1
    assert e.advance(3600.0 + 7199 * 2) == []


def test_reload_forgets_removed_accounts_and_watches_added_ones() -> None:
    """After a reload that removes account "old" and adds "new", silence alerts come for
    "new" (a full `after` from the reload) and never for "old"."""
    r = quiet()
    e = engine(r, accounts=("main", "old"))
    e.start(0.0)
    e.process(balance(1), 1000.0)
    e.process(balance(1, account="old"), 1000.0)
    e.take_state_changes()  # saved: "old" has a row in the store
    e.reload(compile_rules([r], timezone="UTC"), accounts=["main", "new"])
    e.process(balance(2), 2000.0)  # the engine's next look at the clock, after the reload
    assert e.advance(5599.0) == []  # "old" would have fired at 4600: it is not watched now
    assert sorted(a.key for a in e.advance(5600.0)) == ["main", "new"]
    gone = [row for row in e.take_state_changes().rows if row.key == "old"]
    assert [row.data for row in gone] == [None]  # its persisted state is deleted too


def test_late_event_of_a_removed_account_is_not_watched_again() -> None:
    """An event of "old" still queued when the reload removed it starts no new watch."""
    r = quiet()
    e = engine(r, accounts=("main", "old"))
    e.start(0.0)
    e.reload(compile_rules([r], timezone="UTC"), accounts=["main"])
    assert e.process(balance(1, account="old"), 10.0) == []
    assert [a.key for a in e.advance(100_000.0)] == ["main"]


def test_reload_drops_a_firing_key_of_a_disabled_account() -> None:
    """A key already firing for an account the reload disables sends no repeat and no
    resolution afterwards."""
    r = quiet(repeat=600)
    e = engine(r, accounts=("main", "old"))
    e.start(0.0)
    assert sorted(a.key for a in e.advance(3600.0)) == ["main", "old"]
    e.reload(compile_rules([r], timezone="UTC"), accounts=["main"])
    assert [a.key for a in e.advance(4200.0)] == ["main"]  # main's repeat only
    assert e.process(balance(1, account="old"), 4300.0) == []  # nothing left to resolve


def test_reload_after_a_quiet_hour_gives_new_watches_a_full_after() -> None:
    """An absence rule added by a reload, long after the engine last saw an event, waits a
    full `after` from the engine's next clock reading rather than firing at once."""
    e = engine(rule("other", on="order.filled"), accounts=("main",))
    e.process(balance(1), 0.0)
    e.reload(compile_rules([quiet()], timezone="UTC"), accounts=["main"])
    assert e.advance(7200.0) == []  # the first clock reading since the reload
    assert e.next_deadline() == 7200.0 + 3600
