"""One evaluator per rule ``type``: what a matching event or a due timer does."""

from __future__ import annotations

from alertd.config.model import RuleType
from alertd.engine.compile import CompiledRule
from alertd.engine.rule_types.absence import AbsenceRule
from alertd.engine.rule_types.base import ChangedKeys, ClockReference, RuleEvaluator
from alertd.engine.rule_types.event import EventRule
from alertd.engine.rule_types.order_timeout import OrderTimeoutRule
from alertd.engine.rule_types.rate import RateRule
from alertd.engine.rule_types.threshold import ThresholdRule
from alertd.engine.timers import TimerQueue

EVALUATORS: dict[RuleType, type[RuleEvaluator]] = {
    "event": EventRule,
    "threshold": ThresholdRule,
    "rate": RateRule,
    "absence": AbsenceRule,
    "order_timeout": OrderTimeoutRule,
}


def evaluator_for(
    rule: CompiledRule, *, timers: TimerQueue, clock: ClockReference, changed: ChangedKeys
) -> RuleEvaluator:
    """A fresh evaluator (no state yet) for ``rule``, of its type."""
    return EVALUATORS[rule.type](rule, timers=timers, clock=clock, changed=changed)


__all__ = ["EVALUATORS", "ChangedKeys", "ClockReference", "RuleEvaluator", "evaluator_for"]
