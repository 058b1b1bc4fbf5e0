"""One evaluator per rule ``type``: what a matching event or a due timer does."""

from __future__ import annotations

from alertd.config.model import RuleType
from alertd.engine.compile import CompiledRule
from alertd.engine.rule_types.absence import AbsenceRule
from alertd.engine.rule_types.base import ChangedKeys, RuleEvaluator
from alertd.engine.rule_types.clock import ClockReference
from alertd.engine.rule_types.event import EventRule
from alertd.engine.rule_types.order_timeout import OrderTimeoutRule
from alertd.engine.rule_types.rate import RateRule
from alertd.engine.rule_types.summary import SummaryRule
from alertd.engine.rule_types.threshold import ThresholdRule
from alertd.engine.timers import TimerQueue
from alertd.store.rule_state import RuleStateStore

EVALUATORS: dict[RuleType, type[RuleEvaluator]] = {
    "event": EventRule,
    "threshold": ThresholdRule,
    "rate": RateRule,
    "absence": AbsenceRule,
    "order_timeout": OrderTimeoutRule,
    "summary": SummaryRule,
}


def evaluator_for(
    rule: CompiledRule,
    *,
    timers: TimerQueue,
    clock: ClockReference,
    changed: ChangedKeys,
    state: RuleStateStore | None = None,
) -> RuleEvaluator:
    """A fresh evaluator (no state yet) for ``rule``, of its type. ``state``: the engine's
    state database, where a summary reads what was sent and what is silenced."""
    evaluator = EVALUATORS[rule.type](rule, timers=timers, clock=clock, changed=changed)
    if isinstance(evaluator, SummaryRule) and state is not None:
        evaluator.store = state.db
    return evaluator


__all__ = ["EVALUATORS", "ChangedKeys", "ClockReference", "RuleEvaluator", "evaluator_for"]
