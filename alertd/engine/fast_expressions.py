"""``where`` and ``value`` expressions evaluated as plain Python closures when they are made
only of what evaluates the same way outside jinja2: names, constants, comparisons, ``and``,
``or``, ``not``, arithmetic, ``is none`` and Decimal literals.

Each evaluation through jinja2 builds a template ``Context`` and runs the template's render
generator: ~3 us, once per candidate rule per event, which with all 100 benchmark rules on
one account was the largest part of the engine's time. jinja2 itself compiles these nodes
to the same Python operators (``a > b`` to ``(a > b)``, ``x is none`` to ``x is None``; our
sandbox intercepts no operator), so a closure over the parsed expression gives the same
value, and raises the same error, for every context that holds the names it reads. A name
that is not in the context is left to jinja2 (``StrictUndefined`` decides), and any other
expression keeps the jinja2 path whole. tests/engine/test_fast_expressions.py runs both on
generated expressions and contexts and asserts they agree.
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from typing import Any

import jinja2
from jinja2 import nodes
from jinja2.parser import Parser

from alertd.engine.expressions import Expression

Fast = Callable[[dict[str, Any]], Any]

_BINARY: dict[type[nodes.BinExpr], Callable[[Any, Any], Any]] = {
    nodes.Add: operator.add,
    nodes.Sub: operator.sub,
    nodes.Mul: operator.mul,
    nodes.Div: operator.truediv,
    nodes.FloorDiv: operator.floordiv,
    nodes.Mod: operator.mod,
}
_COMPARE: dict[str, Callable[[Any, Any], Any]] = {
    "eq": operator.eq,
    "ne": operator.ne,
    "lt": operator.lt,
    "lteq": operator.le,
    "gt": operator.gt,
    "gteq": operator.ge,
    "in": lambda a, b: a in b,
    "notin": lambda a, b: a not in b,
}
_CONSTANTS = (bool, int, str, type(None))


class _Unsupported(Exception):
    """The expression holds something only jinja2 evaluates faithfully."""


class FastExpression:
    """A ``where``/``value`` expression as a closure, its jinja2 ``Expression`` beside it for
    a context that lacks a name it reads. Called like ``Expression``."""

    __slots__ = ("_fast", "_jinja", "source")

    def __init__(self, jinja: Expression, fast: Fast) -> None:
        self.source = jinja.source
        self._jinja = jinja
        self._fast = fast

    def __call__(self, ctx: dict[str, Any]) -> Any:
        try:
            return self._fast(ctx)
        except KeyError:  # only a name lookup raises it here: let jinja2 say what it is
            return self._jinja(ctx)


def speed_up(env: jinja2.Environment, expression: Expression) -> Expression | FastExpression:
    """``expression`` as a closure where it can be one (see the module), else itself."""
    try:
        node = Parser(env, expression.source, state="variable").parse_expression()
        fast = _build(node, env)
    except (_Unsupported, jinja2.TemplateError):
        return expression
    return FastExpression(expression, fast)


def _build(node: nodes.Node, env: jinja2.Environment) -> Fast:
    if isinstance(node, nodes.Name) and node.ctx == "load":
        name = node.name
        return lambda ctx: ctx[name]
    if isinstance(node, nodes.Const) and type(node.value) in _CONSTANTS:
        value = node.value
        return lambda ctx: value
    if isinstance(node, nodes.Call):
        return _decimal_literal(node, env)
    if isinstance(node, nodes.And):
        left, right = _build(node.left, env), _build(node.right, env)
        return lambda ctx: left(ctx) and right(ctx)
    if isinstance(node, nodes.Or):
        left, right = _build(node.left, env), _build(node.right, env)
        return lambda ctx: left(ctx) or right(ctx)
    if isinstance(node, nodes.Not):
        inner = _build(node.node, env)
        return lambda ctx: not inner(ctx)
    if isinstance(node, nodes.Neg):
        inner = _build(node.node, env)
        return lambda ctx: -inner(ctx)
    if isinstance(node, nodes.Pos):
        inner = _build(node.node, env)
        return lambda ctx: +inner(ctx)
    if type(node) in _BINARY:
        assert isinstance(node, nodes.BinExpr)
        op, left, right = _BINARY[type(node)], _build(node.left, env), _build(node.right, env)
        return lambda ctx: op(left(ctx), right(ctx))
    if isinstance(node, nodes.Test) and node.name == "none" and not _has_arguments(node):
        inner = _build(node.node, env)
        return lambda ctx: inner(ctx) is None
    if isinstance(node, nodes.Compare):
        return _compare(node, env)
    raise _Unsupported(type(node).__name__)


def _compare(node: nodes.Compare, env: jinja2.Environment) -> Fast:
    first = _build(node.expr, env)
    ops = [(_operator(o.op), _build(o.expr, env)) for o in node.ops]
    if len(ops) == 1:
        [(op, right)] = ops
        return lambda ctx: op(first(ctx), right(ctx))

    def chained(ctx: dict[str, Any]) -> Any:
        # Python's chain, as jinja2 writes it: each operand once, stop at the first false
        left = first(ctx)
        result: Any = True
        for op, get in ops:
            right = get(ctx)
            result = op(left, right)
            if not result:
                return result
            left = right
        return result

    return chained


def _operator(name: str) -> Callable[[Any, Any], Any]:
    op = _COMPARE.get(name)
    if op is None:
        raise _Unsupported(name)
    return op


def _has_arguments(node: nodes.Test) -> bool:
    return bool(node.args or node.kwargs or node.dyn_args or node.dyn_kwargs)


def _decimal_literal(node: nodes.Call, env: jinja2.Environment) -> Fast:
    """``D("1.5")``, what the lexer makes of a float literal: the same Decimal each time."""
    callee, args = node.node, node.args
    if not (
        isinstance(callee, nodes.Name)
        and callee.name == "D"
        and len(args) == 1
        and isinstance(args[0], nodes.Const)
        and type(args[0].value) is str
        and not (node.kwargs or node.dyn_args or node.dyn_kwargs)
    ):
        raise _Unsupported("call")
    make = env.globals.get("D")
    if not callable(make):
        raise _Unsupported("D")
    value = make(args[0].value)
    return lambda ctx: value
