"""The rules engine: compiled rules, their state and timers; events in, alerts out."""

from alertd.engine.compile import CompiledRule, RuleCompileError, check_rules, compile_rules
from alertd.engine.engine import Engine, EngineStatistics, RuleStatistics
from alertd.engine.task import run_engine
from alertd.store.rule_state import RuleStateStore, StateChanges, StateRow

__all__ = [
    "CompiledRule",
    "Engine",
    "EngineStatistics",
    "RuleCompileError",
    "RuleStateStore",
    "RuleStatistics",
    "StateChanges",
    "StateRow",
    "check_rules",
    "compile_rules",
    "run_engine",
]
