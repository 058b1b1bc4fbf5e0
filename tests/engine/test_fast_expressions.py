"""``where``/``value`` expressions as closures (engine/fast_expressions) agree with jinja2:
the same value, or the same error, for every expression and context tried."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import jinja2
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from alertd.engine import compile_rules
from alertd.engine.expressions import ExpressionError, compile_expression, environment
from alertd.engine.fast_expressions import FastExpression, speed_up

from .factories import rule

NAMES = ("notional", "price", "amount", "side", "filled", "gone")  # "gone": never in a context
ENV = environment("UTC")

atoms = st.one_of(
    st.sampled_from(NAMES),
    st.sampled_from(("0", "1", "40000", "0.5", "1.25e3", "'buy'", "'sell'", "none", "true")),
)


def _combine(children: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    binary = st.tuples(
        children,
        st.sampled_from(("+", "-", "*", "/", "//", "%", "==", "!=", "<", "<=", ">", ">=",
                         "and", "or", "in", "not in")),
        children,
    ).map(lambda t: f"({t[0]} {t[1]} {t[2]})")  # fmt: skip
    chain = st.tuples(children, children, children).map(lambda t: f"{t[0]} < {t[1]} <= {t[2]}")
    unary = st.tuples(st.sampled_from(("not ", "-")), children).map(lambda t: f"{t[0]}({t[1]})")
    test = st.tuples(children, st.sampled_from(("is none", "is not none"))).map(
        lambda t: f"({t[0]} {t[1]})"
    )
    return st.one_of(binary, chain, unary, test)


expressions = st.recursive(atoms, _combine, max_leaves=6)
values = st.one_of(
    st.none(),
    st.sampled_from((Decimal("0"), Decimal("4003.9"), Decimal("-2.5"), Decimal("1E+3"))),
    st.integers(-3, 50_000),
    st.sampled_from(("buy", "sell", "")),
)
contexts = st.fixed_dictionaries({n: values for n in NAMES if n != "gone"})


def outcome(evaluate: Any, ctx: dict[str, Any]) -> tuple[str, Any]:
    try:
        value = evaluate(dict(ctx))
    except Exception as exc:
        return ("raises", type(exc))
    if isinstance(value, jinja2.Undefined):  # a name alone that is not there: no error yet
        return ("undefined", None)
    return ("value", (type(value), value))


@settings(max_examples=400, deadline=None)
@given(source=expressions, ctx=contexts)
def test_closure_and_jinja_agree(source: str, ctx: dict[str, Any]) -> None:
    """For any expression of names, constants, arithmetic, comparisons and logic, and any
    context, the closure gives what jinja2 gives: the same value of the same type, or an
    error of the same type (a name missing from the context included)."""
    try:
        jinja = compile_expression(ENV, source, NAMES)
    except ExpressionError:
        assume(False)  # not an expression jinja2 reads (``a + not b``): nothing to compare
    fast = speed_up(ENV, jinja)
    assert isinstance(fast, FastExpression)
    helpers = dict(ENV.globals)
    assert outcome(fast, {**helpers, **ctx}) == outcome(jinja, {**helpers, **ctx})


def test_expressions_beyond_the_closures_keep_jinja() -> None:
    """Filters, attribute access, helper calls and conditionals stay jinja2 expressions."""
    for source in ("price | dec(2)", "side.upper() == 'BUY'", "dec(price) == '1'",
                   "price if price else 0", "side ~ 'x'"):  # fmt: skip
        jinja = compile_expression(ENV, source, NAMES)
        assert speed_up(ENV, jinja) is jinja


def test_compiled_rules_use_the_closures() -> None:
    """The benchmark's kinds of where and value compile to closures, with their source."""
    [filled, low] = compile_rules(
        [
            rule("f", on="order.filled", where="notional is not none and notional > 40000.5"),
            rule("low", type="threshold", on="balance.changed", value="balance", below=1),
        ],
        timezone="UTC",
    )
    assert isinstance(filled.where, FastExpression) and isinstance(low.value, FastExpression)
    assert filled.where.source == "notional is not none and notional > 40000.5"
