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
from alertd.messages.formats import bps, dec, duration, num, pct, to_decimal

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
        "num": num,
        "pct": pct,
        "bps": bps,
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
    refusal = sandbox_refusal(ast)  # first: what would fail at 3 a.m. whatever the event
    if refusal is not None:
        raise ExpressionError(refusal)
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


# -- what the sandbox refuses at render time, found before it renders ------------------------
# jinja2's SandboxedEnvironment refuses an attribute at render time (is_safe_attribute): one
# whose name starts with "_", or an internal of some Python object (is_internal_attribute).
# Which object an expression reaches is known only when it runs, so every name that is
# internal for *some* object is refused here, wherever it is used.
# Filters that read the attribute a string argument names (jinja's make_attrgetter, which
# goes through the sandbox too): filter -> position of that argument, None for keyword only.
_ATTRIBUTE_FILTERS: dict[str, int | None] = {
    "attr": 0,
    "selectattr": 0,
    "rejectattr": 0,
    "groupby": 0,
    "map": None,
    "sort": None,
    "sum": None,
    "unique": None,
    "min": None,
    "max": None,
    "join": None,
}


@functools.cache
def _internal_attributes() -> frozenset[str]:
    import types

    from jinja2 import sandbox

    frames = (types.CodeType, types.FrameType, types.TracebackType)
    return frozenset(
        {
            "mro",
            *sandbox.UNSAFE_FUNCTION_ATTRIBUTES,
            *sandbox.UNSAFE_METHOD_ATTRIBUTES,
            *sandbox.UNSAFE_GENERATOR_ATTRIBUTES,
            *sandbox.UNSAFE_COROUTINE_ATTRIBUTES,
            *sandbox.UNSAFE_ASYNC_GENERATOR_ATTRIBUTES,
            # every attribute of a code, frame or traceback object is internal
            *(a for t in frames for a in dir(t) if a.startswith(("co_", "f_", "tb_"))),
            # the names of the same objects before Python 3, still tried by exploits
            *("func_globals", "func_code", "func_closure", "func_defaults", "func_dict"),
            *("im_func", "im_self", "im_class"),
        }
    )


def _unsafe_name(name: str) -> bool:
    return name.startswith("_") or name in _internal_attributes()


def _refused(name: str) -> str:
    return (
        f"reaches for {name!r}, which the sandbox refuses when it renders (names that start "
        "with '_' and Python internals such as mro are off limits: use the fields and helpers)"
    )


def _format_fields(text: str) -> Iterator[str]:
    """The attribute and item names the fields of a ``str.format`` string reach for."""
    import string
    from _string import formatter_field_name_split  # type: ignore[import-not-found]

    try:
        for _, field, spec, _ in string.Formatter().parse(text):
            if field:
                _, rest = formatter_field_name_split(field)
                yield from (str(key) for _, key in rest)
            if spec:
                yield from _format_fields(spec)
    except ValueError:  # not a format string str.format could use: it fails at render anyway
        return


def _const_str(node: nodes.Node | None) -> str | None:
    if isinstance(node, nodes.Const) and isinstance(node.value, str):
        return node.value
    return None


def _in_source_order(node: nodes.Node) -> Iterator[nodes.Node]:
    """Every node below ``node``, children first: ``x.__class__.__mro__`` names
    ``__class__`` first, as written."""
    for child in node.iter_child_nodes():
        yield from _in_source_order(child)
    yield node


def sandbox_refusal(ast: nodes.Node) -> str | None:
    """Why jinja2's sandbox would refuse ``ast`` (a parsed expression or template) when it
    renders, whatever the values: an attribute or item whose constant name is refused
    (``x.__class__``, ``x['__globals__']``, ``x|attr('mro')``, ``map(attribute='_x')``, a
    ``"{0.__class__}".format(x)``), a constant ``range`` beyond the sandbox's limit, or an
    include or import (there is no template to load). None when nothing is."""
    from jinja2.sandbox import MAX_RANGE

    loads = (nodes.Include, nodes.Import, nodes.FromImport, nodes.Extends)
    for node in _in_source_order(ast):
        names: list[str] = []
        if isinstance(node, nodes.Getattr):
            names.append(node.attr)
        elif isinstance(node, nodes.Getitem):
            names.append(_const_str(node.arg) or "")
        elif isinstance(node, nodes.Filter) and node.name in _ATTRIBUTE_FILTERS:
            at = _ATTRIBUTE_FILTERS[node.name]
            args = list(node.args)
            if node.name == "map" and args and _const_str(args[0]) == "attr":
                at, args = 0, args[1:]  # map("attr", "name")
            if at is not None and len(args) > at:
                names.extend((_const_str(args[at]) or "").split("."))
            for keyword in node.kwargs:
                if keyword.key == "attribute":
                    names.extend((_const_str(keyword.value) or "").split("."))
        elif isinstance(node, nodes.Call):
            callee = node.node
            if (
                isinstance(callee, nodes.Getattr)
                and callee.attr in ("format", "format_map")
                and (text := _const_str(callee.node)) is not None
            ):
                names.extend(_format_fields(text))
            elif isinstance(callee, nodes.Name) and callee.name == "range":
                bounds = [a.value for a in node.args if isinstance(a, nodes.Const)]
                if len(bounds) == len(node.args) and all(type(b) is int for b in bounds):
                    try:
                        size = len(range(*bounds))
                    except (TypeError, ValueError, OverflowError):
                        size = 0  # not a range at all: jinja reports that when it renders
                    if size > MAX_RANGE:
                        return (
                            f"asks for a range of {size:,} numbers; the sandbox refuses more "
                            f"than {MAX_RANGE:,}"
                        )
        elif isinstance(node, loads):
            return "includes or imports another template; a rule's templates stand alone"
        unsafe = next((n for n in names if n and _unsafe_name(n)), None)
        if unsafe is not None:
            return _refused(unsafe)
    return None


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
