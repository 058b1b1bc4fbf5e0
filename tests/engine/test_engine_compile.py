"""Rule compilation: every mistake is reported at load with its TOML path, never at 3 a.m."""

from __future__ import annotations

from decimal import Decimal

import pytest

from alertd.engine import RuleCompileError, check_rules, compile_rules

from .factories import rule


def problems_of(*rules, timezone: str = "UTC"):
    return check_rules(list(rules), timezone=timezone)


def test_valid_rules_have_no_problems() -> None:
    """A set of correct rules of every type compiles without problems."""
    rules = [
        rule("filled", on="order.filled", where="notional > 1000 and side == 'buy'"),
        rule(
            "low",
            type="threshold",
            on="balance.changed",
            value="balance",
            below=Decimal(100),
            resolve_above=Decimal(150),
            message="{{ value | dec(2) }}",
        ),
        rule("nsf", type="rate", on="funds.insufficient", count=3, within=600),
        rule("quiet", type="absence", on="trade", symbol="btc-usdt", after=300),
        rule("slow", type="order_timeout", open_for=3600, stalled_for=600),
    ]
    assert problems_of(*rules) == []
    compiled = compile_rules(rules, timezone="UTC")
    assert [c.name for c in compiled] == ["filled", "low", "nsf", "quiet", "slow"]
    assert compiled[3].symbols == frozenset({"BTC_USDT"})


def test_glob_resolves_to_kinds_at_compile_time() -> None:
    """`on = "order.*"` becomes the four order kinds; a list of patterns unions them."""
    [c] = compile_rules([rule(on=["order.*", "trade"])], timezone="UTC")
    assert c.kinds == {
        "order.placed",
        "order.partially_filled",
        "order.filled",
        "order.cancelled",
        "trade",
    }


def test_pattern_matching_no_kind_is_reported() -> None:
    """A typo in `on` is reported at ("rules", i, "on") and names the valid kinds."""
    [(path, message)] = problems_of(rule(on="order.filed"))
    assert path == ("rules", 0, "on")
    assert "'order.filed' matches no event kind" in message
    assert "order.filled" in message


def test_unknown_name_in_where_is_rejected_with_the_rule_path() -> None:
    """A `where` using a field the matched kinds lack is an error at load, with the path."""
    [(path, message)] = problems_of(rule(), rule("b", on="balance.*", where="symbol == 'x'"))
    assert path == ("rules", 1, "where")
    assert "unknown name 'symbol'" in message and "balance.changed" in message


def test_field_must_exist_on_every_kind_the_rule_can_match() -> None:
    """`notional` is on orders but not on balances, so a rule matching both cannot use it."""
    [(path, _)] = problems_of(rule(on=["order.*", "balance.changed"], where="notional > 1"))
    assert path == ("rules", 0, "where")


def test_syntax_errors_in_expressions_and_templates_are_reported() -> None:
    """Broken jinja in where, value, key, title, message and resolved_message is caught."""
    bad = rule(
        "t",
        type="threshold",
        on="balance.changed",
        value="balance +",
        below=Decimal(1),
        where="balance >",
        key="{{ account",
        title="{% if %}",
        message="{{ 1/ }}",
        resolved_message="{{ value | }}",
    )
    fields = [p[0][2] for p in problems_of(bad)]
    assert fields == ["where", "value", "key", "title", "message", "resolved_message"]


def test_unknown_name_in_message_template_is_rejected() -> None:
    """A message template naming something neither the event nor the rule type offers fails."""
    [(path, message)] = problems_of(rule(on="order.filled", message="{{ balance }}"))
    assert path == ("rules", 0, "message")
    assert "'balance'" in message


def test_type_extras_are_allowed_only_for_their_type() -> None:
    """`value` in a threshold message is fine; in an event rule's message it is unknown."""
    ok = rule(
        "a",
        type="threshold",
        on="balance.changed",
        value="balance",
        below=Decimal(1),
        message="{{ value }} {{ threshold }} {{ key }}",
    )
    assert problems_of(ok) == []
    [(path, _)] = problems_of(rule("b", on="balance.changed", message="{{ threshold }}"))
    assert path == ("rules", 0, "message")


def test_missing_and_misplaced_settings_are_reported() -> None:
    """Each type's required settings are demanded, and settings of other types refused."""
    found = problems_of(
        rule("t", type="threshold", on="balance.changed"),
        rule("r", type="rate", on="trade"),
        rule("a", type="absence", on="trade"),
        rule("o", type="order_timeout"),
        rule("e", on="trade", below=Decimal(1), repeat=60),
    )
    assert [p for p, _ in found] == [
        ("rules", 0, "value"),
        ("rules", 0, "below"),
        ("rules", 1, "count"),
        ("rules", 1, "within"),
        ("rules", 2, "after"),
        ("rules", 3, "open_for"),
        ("rules", 4, "below"),
        ("rules", 4, "repeat"),
    ]


def test_hysteresis_bounds_must_be_on_the_far_side() -> None:
    """resolve_above below `below` would resolve before firing, so it is refused."""
    [(path, message)] = problems_of(
        rule(
            type="threshold",
            on="balance.changed",
            value="balance",
            below=Decimal(100),
            resolve_above=Decimal(90),
        )
    )
    assert path == ("rules", 0, "resolve_above") and "at least" in message


def test_for_is_reported_under_its_toml_name() -> None:
    """The `for` setting (for_ in Python) is reported as "for", with a bad value."""
    [(path, _)] = problems_of(
        rule(type="threshold", on="balance.changed", value="balance", below=Decimal(1), for_=0)
    )
    assert path == ("rules", 0, "for")


def test_filter_on_a_field_no_kind_has_is_reported() -> None:
    """`symbol` on a balance rule can never match and is reported."""
    [(path, message)] = problems_of(rule(on="balance.changed", symbol="BTC_USDT"))
    assert path == ("rules", 0, "symbol") and "has a symbol" in message


def test_duplicate_names_and_bad_timezone_are_reported() -> None:
    """Rule names are unique; the timezone must be an IANA name."""
    assert problems_of(rule("x"), rule("x"))[0][0] == ("rules", 1, "name")
    assert problems_of(rule("x"), timezone="Mars/Olympus")[0][0] == ("daemon", "timezone")


def test_order_timeout_refuses_non_order_kinds() -> None:
    """An order_timeout rule watching trades is a mistake said at load."""
    [(path, _)] = problems_of(rule(type="order_timeout", on="trade", open_for=60))
    assert path == ("rules", 0, "on")


def test_compile_rules_raises_with_every_problem() -> None:
    """compile_rules raises one RuleCompileError carrying all problems."""
    with pytest.raises(RuleCompileError) as info:
        compile_rules([rule("a", on="nope"), rule("b", where="x >")], timezone="UTC")
    assert [p for p, _ in info.value.problems] == [("rules", 0, "on"), ("rules", 1, "where")]
    assert "rules[0].on" in str(info.value)


def test_disabled_rules_are_checked_but_not_compiled() -> None:
    """A disabled rule with an error still fails check; a valid one is left out."""
    assert problems_of(rule(enabled=False, where="x >"))
    assert compile_rules([rule(enabled=False)], timezone="UTC") == []


def test_fingerprint_ignores_message_but_not_matching() -> None:
    """Changing a message keeps a rule's fingerprint; changing its threshold does not."""
    base = dict(type="threshold", on="balance.changed", value="balance")
    a, b, c = (
        compile_rules([rule("a", below=Decimal(1), **base)], timezone="UTC"),
        compile_rules(
            [rule("a", below=Decimal(1), message="hi", notify=["x"], **base)], timezone="UTC"
        ),
        compile_rules([rule("a", below=Decimal(2), **base)], timezone="UTC"),
    )
    assert a[0].fingerprint == b[0].fingerprint != c[0].fingerprint


def test_unknown_filter_is_one_clean_line() -> None:
    """A template naming a filter that does not exist is reported on one line naming the
    filter, with no Python source excerpt."""
    problems = check_rules(
        [rule(name="r", on="order.filled", message="{{ side | nosuchfilter }}")],
        timezone="UTC",
    )
    [(path, message)] = problems
    assert path == ("rules", 0, "message")
    assert "nosuchfilter" in message
    assert "\n" not in message
    assert "<introspection>" not in message
