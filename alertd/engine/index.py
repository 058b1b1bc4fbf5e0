"""Which rules could match an event, found with dict lookups: first by kind (globs were
resolved at compile time), then by (account, symbol-or-currency), each side either a value
the rule names or ``None`` for "any", then by the rule's ``side`` filter. The answer depends
on nothing else, so it is remembered per (kind, account, instrument, side): an event costs
one lookup, however many rules are loaded, and an event no rule is about costs only that."""

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
# Answers remembered; a config watches a handful of accounts and markets, so this stays
# small, and the bound (cleared when reached) only guards against made-up symbols.
MAX_REMEMBERED = 4096


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
        self._answers: dict[tuple[str, str, str | None, str | None], Sequence[RuleEvaluator]]
        self._answers = {}

    def candidates(self, event: Event) -> Sequence[RuleEvaluator]:
        """The evaluators whose kind, account, symbol/currency and side filters accept
        ``event``, in config order."""
        kind = event.kind
        field = INSTRUMENT.get(kind)
        slot = (
            kind,
            event.account,
            None if field is None else getattr(event, field),
            getattr(event, "side", None),
        )
        found = self._answers.get(slot)
        if found is None:
            if len(self._answers) >= MAX_REMEMBERED:
                self._answers.clear()
            found = self._answers[slot] = self._look_up(*slot)
        return found

    def _look_up(
        self, kind: str, account: str, instrument: str | None, side: str | None
    ) -> Sequence[RuleEvaluator]:
        table = self._tables.get(kind)
        if not table:
            return _NO_RULES
        get = table.get
        if INSTRUMENT.get(kind) is None:
            found = [get((account, None)), get((None, None))]
        else:
            found = [
                get((account, instrument)),
                get((account, None)),
                get((None, instrument)),
                get((None, None)),
            ]
        hits = sorted([b for h in found if h for b in h], key=_position)
        return tuple(b for b in hits if b.rule.sides is None or side in b.rule.sides)


def _position(b: RuleEvaluator) -> int:
    return b.rule.position
