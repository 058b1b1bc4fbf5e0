"""The engine's side of replicas (engine/owners), without processes: timers fire only for the
accounts an engine owns, only their state is saved, and an account taken over from another
engine's saved rows continues where that engine left it."""

from __future__ import annotations

from alertd.config.model import RuleSettings
from engine.factories import balance, engine, placed, rule


def quiet() -> RuleSettings:
    return rule("quiet", type="absence", on="balance.changed", after=60)


def test_timers_fire_only_for_the_accounts_the_engine_owns() -> None:
    """An engine owning account a reports a's silence, not b's (another replica's)."""
    e = engine(quiet(), accounts=("a", "b"))
    e.start(0.0)
    e.own({"a"})
    assert [alert.key for alert in e.advance(60.0)] == ["a"]
    assert e.owners.statistics().timers_not_owned == 1


def test_only_owned_accounts_state_is_saved_and_what_was_given_up_still_is() -> None:
    """Changes of an account another replica owns are not saved (its rows are the owner's);
    an account given up before the save still has its last changes saved."""
    e = engine(quiet(), accounts=("a", "b"))
    e.start(0.0)
    e.own({"a"})
    e.process(balance(1, account="b"), 1.0)
    assert [r.key for r in e.take_state_changes().rows] == []
    e.process(balance(2, account="a"), 2.0)
    e.own({"b"})
    assert [r.key for r in e.take_state_changes().rows] == ["a"]


def test_a_taken_over_absence_that_fired_is_not_fired_again_and_resolves() -> None:
    """The engine taking over a silent account that fired goes on from the saved state: no
    second alert, and the account's next event resolves it."""
    first = engine(quiet(), accounts=("a",))
    first.start(0.0)
    [fired] = first.advance(60.0)
    rows = first.take_state_changes().rows
    second = engine(quiet(), accounts=("a",))
    second.start(0.0)
    second.own(set())
    second.adopt(100.0, {"a"}, rows)
    second.own({"a"})
    assert second.advance(1000.0) == []
    [resolved] = second.process(balance(1, account="a"), 1001.0)
    assert (fired.status, resolved.status, resolved.key) == ("firing", "resolved", "a")


def test_a_taken_over_order_timeout_keeps_its_deadline_and_its_alert_id() -> None:
    """An order timed by one engine and taken over by another halfway fires at the same
    deadline with the same alert id, so that both firing is still one notification."""
    slow = rule("slow", type="order_timeout", open_for=3600)
    first = engine(slow)
    first.process(placed("7"), 0.0)
    rows = first.take_state_changes().rows
    [theirs] = first.advance(3600.0)
    second = engine(slow)
    second.start(0.0)
    second.own(set())
    second.adopt(1800.0, {"main"}, rows)
    second.own({"main"})
    assert second.next_deadline() == 3600.0
    [ours] = second.advance(3600.0)
    assert ours.id == theirs.id and ours.key == "main/7"
