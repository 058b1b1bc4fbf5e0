"""Expressions and template helpers: exact decimals, durations, local times."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from alertd.engine.expressions import (
    ExpressionError,
    compile_expression,
    compile_template,
    environment,
)
from alertd.messages.formats import dec, duration


def evaluate(source: str, **fields):
    env = environment("UTC")
    expr = compile_expression(env, source, fields)
    return expr({**env.globals, **fields})


def test_float_literals_compare_exactly_with_decimals() -> None:
    """`price > 4003.9` is false for exactly 4003.9: the literal is Decimal, not a float."""
    assert evaluate("price > 4003.9", price=Decimal("4003.9")) is False
    assert evaluate("price > 4003.9", price=Decimal("4003.90001")) is True
    assert evaluate("price == 0.1 + 0.2", price=Decimal("0.3")) is True


def test_arithmetic_with_literals_stays_decimal() -> None:
    """`notional * 0.001` yields a Decimal with no binary drift."""
    assert evaluate("notional * 0.001", notional=Decimal("2001.95")) == Decimal("2.00195")


def test_explicit_decimal_helper() -> None:
    """D("1000") builds a Decimal from text."""
    assert evaluate('amount >= D("1000")', amount=Decimal(1000)) is True


@given(
    st.decimals(
        allow_nan=False, allow_infinity=False, places=4, min_value=-(10**6), max_value=10**6
    )
)
def test_literal_comparison_matches_python_decimal(value: Decimal) -> None:
    """Comparing a field with a literal gives what Decimal comparison with that text gives."""
    assert evaluate("x < 12.5", x=value) == (value < Decimal("12.5"))


def test_undefined_names_fail_strictly_at_runtime() -> None:
    """StrictUndefined: a name missing at render time raises instead of printing nothing."""
    env = environment("UTC")
    template = compile_template(env, "{{ a }}", ["a"])
    with pytest.raises(Exception, match="undefined"):
        template.render()


def test_sandbox_blocks_unsafe_attribute_access() -> None:
    """Templates cannot reach Python internals through dunder attributes."""
    env = environment("UTC")
    with pytest.raises(Exception, match=r"unsafe|__class__"):  # refused when compiled (check)
        template = compile_template(env, "{{ x.__class__.__mro__ }}", ["x"])
        template.render(x=1)


def test_trailing_garbage_is_a_compile_error() -> None:
    """`a b` is not one expression."""
    with pytest.raises(ExpressionError, match="after the expression"):
        compile_expression(environment("UTC"), "a b", ["a", "b"])


def test_dec_formats_plainly_and_rounds() -> None:
    """dec drops trailing zeros and exponent form; with places it rounds half-even."""
    assert dec(Decimal("1.500")) == "1.5"
    assert dec(Decimal("1E+3")) == "1000"
    assert dec(Decimal("0.00000012")) == "0.00000012"
    assert dec(Decimal("2.345"), 2) == "2.34"
    assert dec(None) == "-"


def test_duration_gives_two_largest_units() -> None:
    """7500 s reads "2h 5m"; small and zero durations read sensibly."""
    assert duration(7500) == "2h 5m"
    assert duration(42) == "42s"
    assert duration(90061) == "1d 1h"
    assert duration(0) == "0s"
    assert duration(0.42) == "0.4s"
    assert duration(9.96) == "10.0s"
    assert duration(12.7) == "12s"


def test_localtime_uses_the_configured_timezone() -> None:
    """localtime shows a UTC datetime in the daemon's timezone."""
    env = environment("Asia/Tokyo")
    template = compile_template(env, "{{ t | localtime('%H:%M %Z') }}", ["t"])
    assert template.render(t=datetime(2026, 1, 1, 0, 0, tzinfo=UTC)) == "09:00 JST"


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("{% if big %}{{ price | moneyy }}{% endif %}", "unknown filter 'moneyy'"),
        ("{% if price is biggerthan 5 %}x{% endif %}", "unknown test 'biggerthan'"),
        ("{{ price if big else price | moneyy }}", "unknown filter 'moneyy'"),
        ("{{ price | moneyy }}", "unknown filter 'moneyy'"),
    ],
)
def test_unknown_filter_or_test_in_a_branch_fails_at_load(source: str, message: str) -> None:
    """A typo'd filter or test is rejected when the template loads, even inside a branch
    that would only run for some events, and the message lists the available ones."""
    with pytest.raises(ExpressionError, match=message) as caught:
        compile_template(environment("UTC"), source, ["big", "price"])
    listed = str(caught.value).partition("(available: ")[2]
    assert ("dec," if "filter" in message else "number,") in listed


@pytest.mark.parametrize(
    "source", ["price if big else (price | moneyy)", "big and price is biggerthan 5"]
)
def test_unknown_filter_or_test_in_an_expression_branch_fails_at_load(source: str) -> None:
    """`where`/`value` expressions get the same load-time check as templates."""
    with pytest.raises(ExpressionError, match=r"unknown (filter 'moneyy'|test 'biggerthan')"):
        compile_expression(environment("UTC"), source, ["big", "price"])


def test_known_filters_and_tests_in_branches_still_compile() -> None:
    """Helpers and jinja's own filters and tests inside branches are accepted and run."""
    env = environment("UTC")
    source = "{% if price is number and big %}{{ price | dec(2) | upper }}{% endif %}"
    template = compile_template(env, source, ["big", "price"])
    assert template.render(big=True, price=Decimal("1.5")) == "1.50"


@given(
    mantissa=st.integers(min_value=0, max_value=10**18 - 1),
    exponent=st.integers(min_value=-18, max_value=0),
    negative=st.booleans(),
)
def test_a_literal_keeps_every_digit_it_was_written_with(
    mantissa: int, exponent: int, negative: bool
) -> None:
    """For any decimal of up to 18 significant digits, `x == <literal>` holds when x is that
    decimal, whether the literal is written plainly or with an exponent."""
    x = Decimal(-mantissa if negative else mantissa).scaleb(exponent)
    sign = "-" if negative else ""
    for literal in (f"{x:f}", f"{sign}{mantissa}e{exponent}"):
        assert evaluate(f"x == {literal}", x=x) is True, literal


def test_literal_rewrite_leaves_strings_integers_and_item_access_alone() -> None:
    """Only number literals become Decimals: quoted numbers stay text, integer arguments stay
    ints, and `xs.0` still indexes."""
    assert evaluate('s == "1.50"', s="1.50") is True
    assert evaluate("dec(x, 2)", x=Decimal("2.345")) == "2.34"
    assert evaluate("xs.0", xs=[Decimal("7.5")]) == Decimal("7.5")
    assert evaluate("x == 1_000.5", x=Decimal("1000.5")) is True
