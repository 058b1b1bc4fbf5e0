"""A resolution's title never reads as the alert it ends: the rule's ``resolved_title``,
else its ``title`` marked RESOLVED, else alertd's default that says resolved."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from alertd.engine import RuleCompileError, compile_rules

from .factories import balance, engine, rule


def low(**kw: Any) -> Any:
    settings: dict[str, Any] = dict(
        type="threshold",
        on="balance.changed",
        currency="USDT",
        value="balance",
        below=Decimal(100),
        resolve_above=Decimal(150),
    )
    settings.update(kw)
    return rule("low", **settings)


def titles(**kw: Any) -> list[tuple[str, str]]:
    e = engine(low(**kw))
    out = []
    for t, value in enumerate([90, 160]):
        out += [(a.status, a.title) for a in e.process(balance(value), float(t))]
    return out


def test_resolved_title_names_the_recovery() -> None:
    """With ``resolved_title``, the resolution carries it and the firing alert its title."""
    assert titles(
        title="{{ currency }} low: {{ dec(value) }}",
        resolved_title="{{ currency }} back at {{ dec(value) }}",
    ) == [("firing", "USDT low: 90"), ("resolved", "USDT back at 160")]


def test_a_title_alone_is_marked_resolved() -> None:
    """A rule with only ``title`` gets ``RESOLVED`` before it on the resolution."""
    assert titles(title="{{ currency }} low") == [
        ("firing", "USDT low"),
        ("resolved", "RESOLVED USDT low"),
    ]


def test_a_title_that_says_its_status_is_left_alone() -> None:
    """A title template that names the status already is not marked twice."""
    assert titles(title="{{ currency }} {{ status }}") == [
        ("firing", "USDT firing"),
        ("resolved", "USDT resolved"),
    ]


def test_the_default_title_says_resolved() -> None:
    """Without templates the resolution's default title says RESOLVED."""
    [(_, firing), (_, resolved)] = titles()
    assert "RESOLVED" not in firing
    assert resolved.startswith("[main] RESOLVED ")


def test_resolved_title_is_checked_like_other_templates() -> None:
    """A ``resolved_title`` naming an unknown field, or on a rule that never resolves, is a
    config error naming the setting."""
    with pytest.raises(RuleCompileError) as bad_field:
        compile_rules([low(resolved_title="{{ nosuchfield }}")], timezone="UTC")
    assert "resolved_title" in str(bad_field.value)
    with pytest.raises(RuleCompileError) as wrong_type:
        compile_rules([rule("fills", on="order.filled", resolved_title="done")], timezone="UTC")
    assert "resolved_title" in str(wrong_type.value)
