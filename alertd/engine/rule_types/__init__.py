"""One behaviour per rule ``type``: what a matching event or a due timer does."""

from __future__ import annotations

from alertd.engine.compile import CompiledRule
from alertd.engine.rule_types.absence import AbsenceRule
from alertd.engine.rule_types.base import Behaviour, Runtime
from alertd.engine.rule_types.event import EventRule
from alertd.engine.rule_types.order_timeout import OrderTimeoutRule
from alertd.engine.rule_types.rate import RateRule
from alertd.engine.rule_types.threshold import ThresholdRule

BEHAVIOURS: dict[str, type[Behaviour]] = {
    "event": EventRule,
    "threshold": ThresholdRule,
    "rate": RateRule,
    "absence": AbsenceRule,
    "order_timeout": OrderTimeoutRule,
}


def behaviour_for(rule: CompiledRule, rt: Runtime) -> Behaviour:
    return BEHAVIOURS[rule.type](rule, rt)


__all__ = ["BEHAVIOURS", "Behaviour", "Runtime", "behaviour_for"]
