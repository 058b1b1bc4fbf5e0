"""Which rules could match an event, found with dict lookups: first by kind (globs were
resolved at compile time), then by (account, symbol-or-currency), each side either a value
the rule names or ``None`` for "any". An event costs at most four lookups plus the rules
that really could match, however many rules are loaded."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

from alertd.engine.rule_types.base import RuleEvaluator
from alertd.events import EVENT_KINDS, Event, field_names

Slot = tuple[str | None, str | None]


def instrument_field(kind: str) -> str | None:
    names = field_names(kind)
    if "symbol" in names:
        return "symbol"
    if "currency" in names:
        return "currency"
    return None


INSTRUMENT = {kind: instrument_field(kind) for kind in EVENT_KINDS}
_NO_RULES: tuple[RuleEvaluator, ...] = ()


class RuleIndex:
    def __init__(self, evaluators: Sequence[RuleEvaluator]) -> None:
        tables: dict[str, defaultdict[Slot, list[RuleEvaluator]]] = {
            kind: defaultdict(list) for kind in EVENT_KINDS
        }
        for b in evaluators:
            rule = b.rule
            accounts = sorted(rule.accounts) if rule.accounts is not None else [None]
            for kind in rule.kinds:
                field = INSTRUMENT[kind]
                values = rule.symbols if field == "symbol" else rule.currencies
                instruments = sorted(values) if field and values is not None else [None]
                for account in accounts:
                    for instrument in instruments:
                        tables[kind][(account, instrument)].append(b)
        self._tables: dict[str, dict[Slot, tuple[RuleEvaluator, ...]]] = {
            kind: {slot: tuple(sorted(bs, key=_position)) for slot, bs in table.items()}
            for kind, table in tables.items()
        }

    def candidates(self, event: Event) -> Sequence[RuleEvaluator]:
        """The evaluators whose kind, account and symbol/currency filters accept ``event``,
        in config order."""
        table = self._tables.get(event.kind)
        if not table:
            return _NO_RULES
        account = event.account
        field = INSTRUMENT[event.kind]
        get = table.get
        if field is None:
            found = [get((account, None)), get((None, None))]
        else:
            instrument = getattr(event, field)
            found = [
                get((account, instrument)),
                get((account, None)),
                get((None, instrument)),
                get((None, None)),
            ]
        hits = [f for f in found if f]
        if not hits:
            return _NO_RULES
        if len(hits) == 1:
            return hits[0]
        return sorted([b for h in hits for b in h], key=_position)


def _position(b: RuleEvaluator) -> int:
    return b.rule.position
