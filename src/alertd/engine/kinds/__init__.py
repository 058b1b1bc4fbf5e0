"""One behaviour per rule ``type``: what a matching event or a due timer does."""

from __future__ import annotations

from alertd.engine.compile import CompiledRule
from alertd.engine.kinds.absence import AbsenceRule
from alertd.engine.kinds.base import Behaviour, Runtime
from alertd.engine.kinds.event import EventRule
from alertd.engine.kinds.order_timeout import OrderTimeoutRule
from alertd.engine.kinds.rate import RateRule
from alertd.engine.kinds.threshold import ThresholdRule

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
