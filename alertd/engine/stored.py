"""Which rule-state rows the store holds, so that a key made and dropped between two saves
costs no row at all.

Under a flood most keys live shorter than the save interval (``task.STATE_SAVE_INTERVAL``):
an order_timeout rule watches each order from ``order.placed`` to its fill a few hundred
milliseconds later, so nearly every row a save wrote was the DELETE of a row that was never
written (63,290 of 63,670 rows over 50,000 flood frames with all 100 benchmark rules on the
account). Each row is a statement in the database thread, which takes the GIL back from the
event loop after every one: the saves were a fifth of the daemon's CPU. A delete is now
written only for a key whose row may be in the store: restored at start, or saved with data
since (a delete whose save failed counts as still there).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable

from alertd.engine.rule_types import ChangedKeys, RuleEvaluator
from alertd.store.rule_state import StateRow

Slot = tuple[RuleEvaluator, str]


class StoredKeys:
    """The (evaluator, key) pairs whose row may be in the store; owned by the engine."""

    def __init__(self) -> None:
        self._held: set[Slot] = set()  # saved with data (or restored): the row may be there
        self._deleting: set[Slot] = set()  # their delete was handed out, not yet confirmed

    def restored(self, evaluator: RuleEvaluator, keys: Iterable[str]) -> None:
        """Rows of these keys were read from the store at start."""
        self._held.update((evaluator, key) for key in keys)

    def rows(
        self, changed: ChangedKeys, current: Collection[RuleEvaluator]
    ) -> tuple[StateRow, ...]:
        """The rows to save for ``changed`` (of evaluators in ``current``): every key with
        state, and a delete for each key without whose row may be in the store."""
        held, deleting = self._held, self._deleting
        rows = []
        for slot in changed:
            b, key = slot
            if b not in current:
                continue
            data = b.dump(key)
            if data is not None:
                held.add(slot)
            elif slot in held:
                held.discard(slot)
                deleting.add(slot)
            elif slot not in deleting:
                continue  # made and dropped since the last save: the store never had it
            rows.append(
                StateRow(rule=b.rule.name, fingerprint=b.rule.fingerprint, key=key, data=data)
            )
        return tuple(rows)

    def saved(self, *, ok: bool) -> None:
        """The rows last handed out were written (``ok``) or not: a failed delete leaves its
        row in the store, so the key's next delete is written again."""
        if not ok:
            self._held |= self._deleting
        self._deleting.clear()

    def keep_only(self, current: Collection[RuleEvaluator]) -> None:
        """Forget the keys of evaluators no longer loaded (their rows are pruned by rule)."""
        self._held = {slot for slot in self._held if slot[0] in current}
        self._deleting = {slot for slot in self._deleting if slot[0] in current}
