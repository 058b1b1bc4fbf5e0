"""Rule expressions (``where``, ``value``) and message templates: jinja2's sandbox, compiled
once when rules load, with unknown names rejected then rather than at 3 a.m.

Numbers: event amounts are ``Decimal``. A float literal in an expression (``0.5``) is turned
into ``D("0.5")``, from the literal's own text, by the lexer below, so ``price > 4003.9``
compares exactly and ``notional * 0.001`` stays a Decimal; integer literals already compare
exactly with Decimals.
``D(x)`` makes a Decimal from a string or number explicitly.

Helpers (functions, also usable as filters ``{{ x | dec(2) }}``):

- ``dec(x, places=None)``: a Decimal as plain text, trailing zeros dropped, or rounded to
  ``places``; ``None`` prints as ``-``.
- ``duration(seconds)``: ``"2h 5m"``.
- ``localtime(dt, fmt="%Y-%m-%d %H:%M:%S %Z")``: a UTC datetime in the configured timezone.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import jinja2
from jinja2 import meta, nodes
from jinja2.lexer import TOKEN_FLOAT, TOKEN_NAME, TOKEN_OPERATOR, TOKEN_STRING, Lexer, Token
from jinja2.parser import Parser
from jinja2.sandbox import SandboxedEnvironment

# The helpers are shared with alertd's own message texts (re-exported: the rule types and
# tests import them from here).
from alertd.messages.formats import dec as dec  # noqa: PLC0414
from alertd.messages.formats import duration as duration  # noqa: PLC0414
from alertd.messages.formats import to_decimal as to_decimal  # noqa: PLC0414

DEFAULT_TIME_FORMAT = "%Y-%m-%d %H:%M:%S %Z"


class ExpressionError(Exception):
    """An expression or template that does not compile or names something unknown."""


def load_timezone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ExpressionError(
            f"unknown timezone {name!r} (use an IANA name such as 'UTC' or 'Europe/Berlin')"
        ) from None


class _DecimalLexer(Lexer):
    """jinja2's lexer, except that each float literal ``1.5`` becomes ``D("1.5")`` from its
    source text, so expressions never mix binary floats into Decimal arithmetic and a literal
    keeps every digit written (``123456789.123456789``).

    The rewrite sits between ``tokeniter`` (which still has the literal's text) and ``wrap``
    (which turns it into a float): by the time an extension's ``filter_stream`` sees the
    token, digits past a float's precision are gone. Using jinja's own tokenizer, not a regex
    over the source, keeps strings, ``foo.0.1`` item access and integers (``dec(x, 2)``)
    exactly as jinja reads them."""

    def wrap(
        self,
        stream: Iterable[tuple[int, str, str]],
        name: str | None = None,
        filename: str | None = None,
    ) -> Iterator[Token]:
        return super().wrap(_decimal_literals(stream), name, filename)


def _decimal_literals(stream: Iterable[tuple[int, str, str]]) -> Iterator[tuple[int, str, str]]:
    for lineno, token, text in stream:
        if token == TOKEN_FLOAT:
            digits = text.replace("_", "")  # only digits, ".", "e" and a sign: safe to quote
            yield lineno, TOKEN_NAME, "D"
            yield lineno, TOKEN_OPERATOR, "("
            yield lineno, TOKEN_STRING, f'"{digits}"'
            yield lineno, TOKEN_OPERATOR, ")"
        else:
            yield lineno, token, text


class _Environment(SandboxedEnvironment):
    """The sandbox with the Decimal-literal lexer (jinja2 caches one lexer per syntax
    setting, shared by every environment, so ours is kept on the instance)."""

    @property
    def lexer(self) -> Lexer:
        lexer: Lexer | None = self.__dict__.get("_decimal_lexer")
        if lexer is None:
            lexer = self.__dict__["_decimal_lexer"] = _DecimalLexer(self)
        return lexer


@functools.lru_cache(maxsize=8)
def environment(timezone: str) -> SandboxedEnvironment:
    """The sandbox for one display timezone (cached: one per timezone in use)."""
    tz = load_timezone(timezone)

    def localtime(dt: datetime | None, fmt: str = DEFAULT_TIME_FORMAT) -> str:
        if dt is None:
            return "-"
        return dt.astimezone(tz).strftime(fmt)

    env = _Environment(
        undefined=jinja2.StrictUndefined,
        autoescape=False,
        keep_trailing_newline=False,
    )
    helpers: dict[str, Callable[..., Any]] = {
        "D": to_decimal,
        "dec": dec,
        "duration": duration,
        "localtime": localtime,
    }
    env.globals.update(helpers)
    env.filters.update(helpers)
    return env


def helper_names(env: jinja2.Environment) -> frozenset[str]:
    return frozenset(env.globals)


def _describe(exc: jinja2.TemplateError) -> str:
    # exc.message, not str(exc): a TemplateSyntaxError's str() adds a source excerpt line
    # ('File "<introspection>", line 1') that means nothing to someone editing TOML.
    return f"does not compile: {exc.message or type(exc).__name__}"


def _check_names(
    ast: nodes.Template, allowed: Iterable[str], kinds_hint: str, env: jinja2.Environment
) -> None:
    _check_filters_and_tests(ast, env)  # first: jinja's own check stops at the first use
    try:
        used = meta.find_undeclared_variables(ast)
    except jinja2.TemplateError as exc:
        raise ExpressionError(_describe(exc)) from None
    unknown = sorted(used - set(allowed) - set(env.globals))
    if unknown:
        names = ", ".join(repr(u) for u in unknown)
        choices = ", ".join(sorted(set(allowed)))
        raise ExpressionError(f"unknown name {names}{kinds_hint} (available: {choices})")


def _check_filters_and_tests(ast: nodes.Template, env: jinja2.Environment) -> None:
    # Since jinja2 3.0 an unknown filter or test inside {% if %} or ``a if c else b`` is not
    # a compile error: it raises only when that branch runs. Every use is checked here so a
    # typo fails `alertd check`, not the first big fill.
    for node in ast.find_all((nodes.Filter, nodes.Test)):
        if isinstance(node, nodes.Filter):
            what, known = "filter", env.filters
        else:
            what, known = "test", env.tests
        if node.name not in known:
            choices = ", ".join(sorted(known))
            raise ExpressionError(f"unknown {what} {node.name!r} (available: {choices})")


class Expression:
    """A compiled jinja2 expression; calling it with a context mapping returns its value.
    Errors (a ``None`` compared with a number, a missing name) propagate to the caller."""

    __slots__ = ("_env", "_render", "_template", "source")

    def __init__(self, env: jinja2.Environment, source: str, expr: nodes.Expr) -> None:
        self.source = source
        # The same construction jinja2's compile_expression uses, kept so we hold the
        # parsed node for the name check and call the render function without the wrapper's
        # per-call dict copy (this runs once per candidate rule per event).
        body = [nodes.Assign(nodes.Name("result", "store"), expr, lineno=1)]
        self._env = env
        self._template = env.from_string(nodes.Template(body, lineno=1))
        self._render = self._template.root_render_func

    def __call__(self, ctx: dict[str, Any]) -> Any:
        """Evaluate over ``ctx``, which must already hold the environment's helpers (the
        engine builds one such mapping per event and shares it, read-only, between rules)."""
        # The context is built directly rather than by Template.new_context, which passes
        # the template's globals (a ChainMap) only for Context to copy their names into a
        # set, used by make_module and never by an expression: that copy was ~6 us, a third
        # of an evaluation. Names resolve from ``ctx``, which already holds the helpers.
        context = self._env.context_class(self._env, ctx, None, {})
        for _ in self._render(context):
            pass
        return context.vars["result"]


def compile_expression(
    env: jinja2.Environment, source: str, allowed: Iterable[str], kinds_hint: str = ""
) -> Expression:
    """Compile ``source`` as an expression over ``allowed`` names or raise ExpressionError."""
    if not source.strip():
        raise ExpressionError("is empty")
    try:
        parser = Parser(env, source, state="variable")
        expr = parser.parse_expression()
        if not parser.stream.eos:
            raise jinja2.TemplateSyntaxError(
                f"unexpected {parser.stream.current.value!r} after the expression",
                parser.stream.current.lineno,
            )
        expr.set_environment(env)
    except jinja2.TemplateSyntaxError as exc:
        raise ExpressionError(_describe(exc)) from None
    ast = nodes.Template([nodes.Output([expr])], lineno=1)
    ast.set_environment(env)
    _check_names(ast, allowed, kinds_hint, env)
    try:
        return Expression(env, source, expr)
    except jinja2.TemplateError as exc:
        raise ExpressionError(_describe(exc)) from None


def compile_template(
    env: jinja2.Environment, source: str, allowed: Iterable[str], kinds_hint: str = ""
) -> jinja2.Template:
    """Compile ``source`` as a message template over ``allowed`` names or raise."""
    try:
        ast = env.parse(source)
    except jinja2.TemplateSyntaxError as exc:
        raise ExpressionError(_describe(exc)) from None
    _check_names(ast, allowed, kinds_hint, env)
    try:
        return env.from_string(source)
    except jinja2.TemplateError as exc:
        raise ExpressionError(_describe(exc)) from None
