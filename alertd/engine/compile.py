"""Turn ``[[rules]]`` settings into ``CompiledRule`` values: globs resolved to event kinds,
filters normalized into sets, expressions and templates compiled and their names checked
against every event kind the rule can see. Every problem is reported with its TOML path, all
at once, so ``alertd check`` can list them together."""

from __future__ import annotations

import fnmatch
import hashlib
from collections.abc import Callable, Iterable, Sequence
from typing import Any, TypeVar

import attrs
import jinja2

from alertd.config.model import RuleSettings, RuleType
from alertd.config.validate import summary_schedule_problems
from alertd.engine.expressions import (
    Expression,
    ExpressionError,
    compile_expression,
    compile_template,
    environment,
)
from alertd.engine.fast_expressions import FastExpression, speed_up
from alertd.events import EVENT_KINDS, field_names, normalize_symbol

T = TypeVar("T")  # what a compiled source becomes: an expression or a template

Path = tuple[str | int, ...]
Problem = tuple[Path, str]

ORDER_KINDS = frozenset(k for k in EVENT_KINDS if k.startswith("order."))
ORDER_END_KINDS = frozenset({"order.filled", "order.cancelled"})
# What a summary rule counts: fills and cancels, and how the watching went.
SUMMARY_KINDS = ORDER_END_KINDS | frozenset(
    {"stream.connected", "stream.disconnected", "stream.gap", "stream.stale", "stream.error"}
)
# Filters a summary rule has no use for: it reports on whole accounts.
SUMMARY_REFUSES = ("where", "key", "symbol", "currency", "side", "cooldown")

# Names templates see besides the event's fields, per rule type (expressions and keys see
# only the event's fields).
COMMON_EXTRAS = ("rule", "key", "status", "severity", "now", "type")
TYPE_EXTRAS: dict[str, tuple[str, ...]] = {
    "event": (),
    "threshold": ("value", "threshold", "pending_for"),
    "rate": ("count", "within", "seen"),
    "absence": ("after", "last_seen", "silent_for"),
    "order_timeout": ("reason", "age", "open_for", "stalled_for", "since_progress"),
    "summary": ("digest", "since", "until", "late"),
}
# Settings that only some types use: a rule of another type naming them is a mistake.
TYPE_ONLY_FIELDS: dict[str, tuple[RuleType, ...]] = {
    "value": ("threshold",),
    "below": ("threshold",),
    "above": ("threshold",),
    "resolve_below": ("threshold",),
    "resolve_above": ("threshold",),
    "for_": ("threshold",),
    "count": ("rate",),
    "within": ("rate",),
    "after": ("absence",),
    "open_for": ("order_timeout",),
    "stalled_for": ("order_timeout",),
    "repeat": ("threshold", "absence", "order_timeout"),
    "resolved_message": ("threshold", "absence", "order_timeout"),
    "resolved_title": ("threshold", "absence", "order_timeout"),
    "every": ("summary",),
    "at": ("summary",),
}
# Settings that change what a rule's state means. A reload or restart keeps a rule's state
# when these are unchanged, so editing a message or a channel does not re-fire an alert.
STATE_FIELDS = (
    "name", "on", "type", "account", "symbol", "side", "currency", "where", "key", "value",
    "below", "above", "resolve_below", "resolve_above", "for_", "count", "within", "after",
    "open_for", "stalled_for",
)  # fmt: skip


def toml_name(field: str) -> str:
    return "for" if field == "for_" else field


class RuleCompileError(Exception):
    """The rules have problems; ``problems`` lists each as (TOML path, message)."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        self.problems = list(problems)
        lines = [f"{format_path(p)}: {m}" for p, m in self.problems]
        super().__init__("; ".join(lines))


def format_path(path: Path) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else part)
    return out


@attrs.frozen(kw_only=True, eq=False)
class CompiledRule:
    """One rule, ready to evaluate. Filters are ``None`` when the rule does not filter."""

    settings: RuleSettings
    position: int  # index in the config's rules list: alerts of one event keep this order
    name: str
    type: RuleType
    kinds: frozenset[str]
    accounts: frozenset[str] | None
    symbols: frozenset[str] | None
    currencies: frozenset[str] | None
    sides: frozenset[str] | None
    where: Expression | FastExpression | None
    value: Expression | FastExpression | None
    key: jinja2.Template | None
    title: jinja2.Template | None
    message: jinja2.Template | None
    resolved_message: jinja2.Template | None
    resolved_title: jinja2.Template | None
    fingerprint: str
    env: jinja2.Environment
    globals: dict[str, Any]  # helpers, merged into each evaluation context
    timezone: str = "UTC"  # [daemon] timezone: where a summary's schedule is read


def fingerprint(rule: RuleSettings) -> str:
    """A stable hash of the settings that define the rule's state (see STATE_FIELDS)."""
    parts = [f"{f}={getattr(rule, f)!r}" for f in STATE_FIELDS]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]


def _as_set(value: str | list[str] | None, norm: Any = str) -> frozenset[str] | None:
    if value is None:
        return None
    values = [value] if isinstance(value, str) else list(value)
    return frozenset(norm(v) for v in values)


def resolve_kinds(patterns: Iterable[str]) -> tuple[frozenset[str], list[str]]:
    """Kinds matched by exact names or globs, and the patterns that matched none."""
    kinds: set[str] = set()
    unmatched: list[str] = []
    for pattern in patterns:
        hit = fnmatch.filter(EVENT_KINDS, pattern)
        if hit:
            kinds.update(hit)
        else:
            unmatched.append(pattern)
    return frozenset(kinds), unmatched


def _common_fields(kinds: Iterable[str]) -> frozenset[str]:
    sets = [frozenset(field_names(k)) for k in kinds]
    return frozenset.intersection(*sets) if sets else frozenset()


class _RuleCompiler:
    def __init__(
        self, rule: RuleSettings, position: int, env: jinja2.Environment, timezone: str = "UTC"
    ) -> None:
        self.timezone = timezone
        self.rule = rule
        self.position = position
        self.env = env
        self.problems: list[Problem] = []

    def problem(self, field: str, message: str) -> None:
        self.problems.append((("rules", self.position, toml_name(field)), message))

    def compile(self) -> CompiledRule | None:
        rule = self.rule
        if not rule.name.strip():
            self.problem("name", "is empty: give every rule a name")
        kinds = self._kinds()
        self._check_type_fields()
        self._check_numbers()
        accounts = _as_set(rule.account)
        symbols = _as_set(rule.symbol, normalize_symbol)
        currencies = _as_set(rule.currency, lambda c: c.strip().upper())
        sides = frozenset([rule.side]) if rule.side is not None else None
        # A filter narrows the kinds to those that have the field (symbol and currency
        # together: to kinds with either); a filter no matched kind has is reported.
        narrow: list[tuple[str, frozenset[str]]] = []
        if symbols is not None and currencies is not None:
            narrow.append(("symbol or currency", frozenset(["symbol", "currency"])))
        elif symbols is not None:
            narrow.append(("symbol", frozenset(["symbol"])))
        elif currencies is not None:
            narrow.append(("currency", frozenset(["currency"])))
        if sides is not None:
            narrow.append(("side", frozenset(["side"])))
        for label, wanted in narrow:
            having = frozenset(k for k in kinds if wanted & set(field_names(k)))
            if kinds and not having:
                self.problem(
                    label.split()[0],
                    f"no event kind this rule matches ({', '.join(sorted(kinds))}) has a {label}",
                )
            kinds = having
        fields = _common_fields(kinds)
        hint = f" for {', '.join(sorted(kinds))}" if kinds else ""
        extras = (*COMMON_EXTRAS, *TYPE_EXTRAS[rule.type])
        where = self._expr("where", rule.where, fields, hint)
        value = self._expr("value", rule.value, fields, hint)
        key = self._template("key", rule.key, fields, hint)
        title = self._template("title", rule.title, fields | set(extras), hint)
        message = self._template("message", rule.message, fields | set(extras), hint)
        resolved = self._template(
            "resolved_message", rule.resolved_message, fields | set(extras), hint
        )
        resolved_title = self._template(
            "resolved_title", rule.resolved_title, fields | set(extras), hint
        )
        if self.problems or not kinds:
            return None
        return CompiledRule(
            settings=rule,
            position=self.position,
            name=rule.name,
            type=rule.type,
            kinds=kinds,
            accounts=accounts,
            symbols=symbols,
            currencies=currencies,
            sides=sides,
            where=where,
            value=value,
            key=key,
            title=title,
            message=message,
            resolved_message=resolved,
            resolved_title=resolved_title,
            fingerprint=fingerprint(rule),
            env=self.env,
            globals=dict(self.env.globals),
            timezone=self.timezone,
        )

    def _kinds(self) -> frozenset[str]:
        rule = self.rule
        patterns = [rule.on] if isinstance(rule.on, str) else list(rule.on)
        if not patterns:
            self.problem("on", "is empty: name an event kind or a glob such as 'order.*'")
            return frozenset()
        kinds, unmatched = resolve_kinds(patterns)
        for pattern in unmatched:
            self.problem(
                "on",
                f"{pattern!r} matches no event kind (kinds: {', '.join(sorted(EVENT_KINDS))})",
            )
        if rule.type == "summary":
            if rule.on != "*":
                self.problem("on", "a summary rule counts fills, cancels and stream events "
                             "itself: leave out on")  # fmt: skip
            return SUMMARY_KINDS
        if rule.type == "order_timeout":
            if rule.on == "*":
                return ORDER_KINDS
            others = kinds - ORDER_KINDS
            if others:
                self.problem(
                    "on",
                    f"an order_timeout rule watches order.* events; "
                    f"{', '.join(sorted(others))} are not orders",
                )
            return kinds & ORDER_KINDS
        return kinds

    def _check_type_fields(self) -> None:
        rule = self.rule
        for field, types in TYPE_ONLY_FIELDS.items():
            if getattr(rule, field) is not None and rule.type not in types:
                self.problem(
                    field,
                    f"applies only to {' / '.join(types)} rules, "
                    f"this rule has type = {rule.type!r}",
                )
        if rule.type == "threshold":
            if rule.value is None:
                self.problem("value", "a threshold rule needs value (e.g. value = 'balance')")
            if rule.below is None and rule.above is None:
                self.problem("below", "a threshold rule needs below and/or above")
            if rule.resolve_above is not None:
                if rule.below is None:
                    self.problem("resolve_above", "needs below (it ends a below-alert)")
                elif rule.resolve_above < rule.below:
                    self.problem("resolve_above", f"must be at least below ({rule.below})")
            if rule.resolve_below is not None:
                if rule.above is None:
                    self.problem("resolve_below", "needs above (it ends an above-alert)")
                elif rule.resolve_below > rule.above:
                    self.problem("resolve_below", f"must be at most above ({rule.above})")
            if rule.below is not None and rule.above is not None and rule.below >= rule.above:
                self.problem("below", f"must be less than above ({rule.above})")
        elif rule.type == "rate":
            if rule.count is None:
                self.problem("count", "a rate rule needs count (e.g. count = 3)")
            if rule.within is None:
                self.problem("within", "a rate rule needs within (e.g. within = '10m')")
        elif rule.type == "absence":
            if rule.after is None:
                self.problem("after", "an absence rule needs after (e.g. after = '15m')")
        elif rule.type == "summary":
            for field in SUMMARY_REFUSES:
                if getattr(rule, field) is not None:
                    self.problem(field, "a summary rule reports on whole accounts: leave it out")
            for field, message in summary_schedule_problems(rule):
                self.problem(field, message)
        elif rule.type == "order_timeout" and rule.open_for is None and rule.stalled_for is None:
            self.problem("open_for", "an order_timeout rule needs open_for and/or stalled_for")

    def _check_numbers(self) -> None:
        rule = self.rule
        for field in ("for_", "within", "after", "open_for", "stalled_for", "cooldown", "repeat"):
            value = getattr(rule, field)
            if value is not None and not value > 0:
                self.problem(field, f"must be a positive duration, not {value!r}")
        if rule.count is not None and rule.count < 1:
            self.problem("count", f"must be at least 1, not {rule.count}")

    def _expr(
        self, field: str, source: str | None, names: frozenset[str], hint: str
    ) -> Expression | FastExpression | None:
        def build(s: str) -> Expression | FastExpression:
            return speed_up(self.env, compile_expression(self.env, s, names, hint))

        return self._compiled(field, source, build, f"{source!r} ")

    def _template(
        self, field: str, source: str | None, names: Iterable[str], hint: str
    ) -> jinja2.Template | None:
        return self._compiled(
            field, source, lambda s: compile_template(self.env, s, names, hint), "template "
        )

    def _compiled(
        self, field: str, source: str | None, build: Callable[[str], T], what: str
    ) -> T | None:
        """``build(source)``; None when there is no source, or when it does not compile (the
        problem noted as ``what`` and the error)."""
        if source is None:
            return None
        try:
            return build(source)
        except ExpressionError as exc:
            self.problem(field, f"{what}{exc}")
            return None


def _compile(
    rules: Sequence[RuleSettings], timezone: str
) -> tuple[list[CompiledRule], list[Problem]]:
    try:
        env = environment(timezone)
    except ExpressionError as exc:
        return [], [(("daemon", "timezone"), str(exc))]
    compiled: list[CompiledRule] = []
    problems: list[Problem] = []
    seen: dict[str, int] = {}
    for position, rule in enumerate(rules):
        if rule.name in seen:
            problems.append(
                (
                    ("rules", position, "name"),
                    f"{rule.name!r} is already the name of rules[{seen[rule.name]}]; "
                    "rule names must be unique",
                )
            )
        seen.setdefault(rule.name, position)
        compiler = _RuleCompiler(rule, position, env, timezone)
        result = compiler.compile()
        problems.extend(compiler.problems)
        if result is not None and rule.enabled:
            compiled.append(result)
    return compiled, problems


def check_rules(rules: list[RuleSettings], *, timezone: str) -> list[Problem]:
    """Every problem in ``rules`` as (TOML path such as ("rules", 2, "where"), message).
    Disabled rules are checked too, so enabling one later cannot fail."""
    return _compile(rules, timezone)[1]


def compile_rules(rules: list[RuleSettings], *, timezone: str) -> list[CompiledRule]:
    """Compile the enabled rules, or raise RuleCompileError listing every problem."""
    compiled, problems = _compile(rules, timezone)
    if problems:
        raise RuleCompileError(problems)
    return compiled
