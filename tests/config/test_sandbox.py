"""Expressions and templates that reach for what jinja2's sandbox refuses (dunder attributes,
Python internals, huge ranges, includes) fail `alertd check` on the key's own line, in every
place a rule or an account writes one, even in a branch a test render would not take."""

from __future__ import annotations

from typing import Any

import jinja2
import pytest
from jinja2.sandbox import SandboxedEnvironment, SecurityError

from .conftest import ACCOUNT_WITH_AUTH, ProblemsOf, lines

RULES = """\
[channels]
me = "json://localhost:8080/"

[[rules]]
name = "filled"
on = "order.filled"
notify = ["me"]
{field} = {value}
"""

REFUSED_TEMPLATES = [
    ("{{ price.__class__ }}", "'__class__'"),
    ("{{ symbol.__class__.__mro__[1].__subclasses__() }}", "'__class__'"),
    ("{{ symbol.__subclasses__() }}", "'__subclasses__'"),
    ("{{ symbol.upper.__globals__ }}", "'__globals__'"),
    ("{{ symbol['__class__'] }}", "'__class__'"),
    ("{{ symbol|attr('__class__') }}", "'__class__'"),
    ("{{ [symbol]|map(attribute='__class__')|list }}", "'__class__'"),
    ("{{ [symbol]|map('attr', '__doc__')|list }}", "'__doc__'"),
    ("{{ [symbol]|selectattr('__class__')|list }}", "'__class__'"),
    ("{{ [symbol]|sort(attribute='x.__class__')|list }}", "'__class__'"),
    ("{{ '{0.__class__}'.format(symbol) }}", "'__class__'"),
    ("{{ '{0:{1.__doc__}}'.format(symbol, price) }}", "'__doc__'"),
    ("{{ symbol.mro() }}", "'mro'"),
    ("{{ symbol.func_globals }}", "'func_globals'"),
    ("{{ symbol.gi_frame }}", "'gi_frame'"),
    ("{{ symbol._private }}", "'_private'"),
    ("{% if false %}{{ price.__class__ }}{% endif %}", "'__class__'"),
    ("{% for i in range(10000000) %}{% endfor %}", "range of 10,000,000"),
    ("{% include 'other' %}", "includes or imports"),
    ("{% import 'macros' as m %}", "includes or imports"),
]


@pytest.mark.parametrize("field", ["title", "message", "key"])
@pytest.mark.parametrize(("template", "named"), REFUSED_TEMPLATES)
def test_refused_template_fails_check_on_its_line(
    problems_of: ProblemsOf, field: str, template: str, named: str
) -> None:
    """A title, message or key template the sandbox would refuse fails the check, on the
    key's own line, naming what it reaches for."""
    problems = problems_of(RULES.format(field=field, value=f"'''{template}'''"))
    assert [(p.line, p.path) for p in problems] == [(8, f"rules[0].{field}")]
    assert named in problems[0].message
    assert problems[0].message.startswith("template ")


def test_resolved_message_is_checked_too(problems_of: ProblemsOf) -> None:
    """resolved_message (a threshold rule's) is refused like the other templates."""
    text = RULES.format(field="resolved_message", value="'{{ balance.__class__ }}'")
    text = text.replace('on = "order.filled"', 'on = "balance.changed"\ntype = "threshold"')
    text += 'value = "balance"\nbelow = 5\n'
    problems = problems_of(text)
    assert [(p.line, p.path) for p in problems] == [(9, "rules[0].resolved_message")]
    assert "'__class__'" in problems[0].message


@pytest.mark.parametrize(
    ("expression", "named"),
    [
        ("price.__class__.__name__ == 'Decimal'", "'__class__'"),
        ("symbol.__len__() > 3", "'__len__'"),
        ("symbol['__class__']", "'__class__'"),
        ("(symbol|attr('__doc__')) != ''", "'__doc__'"),
        ("notional > 0 or symbol.mro", "'mro'"),
    ],
)
def test_refused_where_expression_fails_check(
    problems_of: ProblemsOf, expression: str, named: str
) -> None:
    """A where expression that reaches for a refused attribute fails on its line."""
    problems = problems_of(RULES.format(field="where", value=f'"{expression}"'))
    assert [(p.line, p.path) for p in problems] == [(8, "rules[0].where")]
    assert named in problems[0].message


def test_refused_value_expression_fails_check(problems_of: ProblemsOf) -> None:
    """A threshold rule's value expression is checked the same way."""
    text = RULES.format(field="value", value='"balance.__class__"')
    text = text.replace('on = "order.filled"', 'on = "balance.changed"\ntype = "threshold"')
    problems = problems_of(text + "below = 5\n")
    assert lines(problems) == [
        "config.toml:9 rules[0].value: 'balance.__class__' reaches for '__class__', which the "
        "sandbox refuses when it renders (names that start with '_' and Python internals such "
        "as mro are off limits: use the fields and helpers)"
    ]


def test_refused_login_frame_fails_check(problems_of: ProblemsOf) -> None:
    """A login frame that reaches for a dunder, even in a branch no test render takes, fails
    on its own line."""
    frame = "login_frame = '{% if nonce == \"x\" %}{{ api_key.__class__ }}{% endif %}'\n"
    problems = problems_of(ACCOUNT_WITH_AUTH.replace("[channels]", frame + "[channels]"))
    assert [(p.line, p.path) for p in problems] == [(9, "accounts[0].auth.login_frame")]
    assert "'__class__'" in problems[0].message


def test_refused_header_template_fails_check_once(problems_of: ProblemsOf) -> None:
    """A header template that the sandbox would refuse is reported once, on the header."""
    header = 'headers = { Authorization = "{{ hmac_sha256.__globals__ }}" }\n'
    problems = problems_of(ACCOUNT_WITH_AUTH.replace("[channels]", header + "[channels]"))
    assert [(p.line, p.path) for p in problems] == [(9, "accounts[0].auth.headers.Authorization")]
    assert "'__globals__'" in problems[0].message


@pytest.mark.parametrize(
    "template",
    [
        "{{ symbol.upper() }} {{ price | dec(2) }} {{ '{0} at {1}'.format(symbol, price) }}",
        "{{ [symbol]|map('upper')|list }} {{ range(10)|list }} {{ symbol|replace('_', '/') }}",
        "{{ ['a']|join(', ') }} {{ {'k': symbol}['k'] }} {{ symbol[0] }}",
    ],
)
def test_safe_templates_still_pass(problems_of: ProblemsOf, template: str) -> None:
    """Ordinary attribute calls, item access, formatting and filters are not refused."""
    assert problems_of(RULES.format(field="message", value=f"'''{template}'''")) == []


def _render(template: str) -> Any:
    env = SandboxedEnvironment(undefined=jinja2.StrictUndefined)
    return env.from_string(template).render(symbol="BTC_USDT", price=1, notional=1, x=[1])


@pytest.mark.parametrize(
    ("template", "named"),
    [t for t in REFUSED_TEMPLATES if "if false" not in t[0] and "range" not in t[0]],
)
def test_what_check_refuses_the_sandbox_refuses_at_render(template: str, named: str) -> None:
    """Each refused template is refused by jinja2's sandbox too when it renders (check only
    moves the failure from 3 a.m. to the check): its own error, or the unsafe Undefined it
    puts in place of the attribute (which a filter such as list shows as "Undefined"), or,
    for includes, for want of any template to load."""
    try:
        shown = _render(template)
    except (SecurityError, jinja2.UndefinedError, TypeError, jinja2.TemplateError):
        return
    assert "Undefined" in shown


def test_sandbox_refuses_a_huge_range_at_render() -> None:
    """The range limit check enforces is the sandbox's own."""
    with pytest.raises(OverflowError):
        _render("{% for i in range(10000000) %}{% endfor %}")
