"""Which accounts' timers an engine evaluates, when replicas share one database
(alertd.cluster). Pure and synchronous, owned by the engine.

Every replica that watches an account evaluates its events, so event-driven alerts come
from each watcher with the same ids (the outbox keeps one). Timers are another matter: a
replica that does not watch an account sees no events of it and would report its silence,
and two watchers' deadlines differ by their own receive times, so their timer alerts would
not share ids. So one replica of each account, its owner (the cluster's reporter for it),
decides its timers (absence, order timeouts, pending thresholds, repeats), and its rows in
the shared ``rule_state`` table are the account's truth: another engine skips the timers of
an account it does not own (``elsewhere``) and does not save its keys (``keep_own``), which
would overwrite the owner's decisions with its own view. An engine taking an account over
(``adopt``) reads those rows and continues from them.

A key whose account its evaluator cannot tell (``account_of`` None: a rule
that keeps no per-account state, a summary's schedule) is evaluated and saved as before.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from typing import Any, Protocol

import attrs

from alertd.engine.rule_types import ChangedKeys, RuleEvaluator
from alertd.engine.rule_types.base import KeyedEvaluator
from alertd.engine.rule_types.summary import Round, SummaryRule
from alertd.events import Alert
from alertd.store.rule_state import StateRow, rows_by_rule

log = logging.getLogger(__name__)


class Stored(Protocol):
    """The engine's record of which keys' rows the store holds (engine.stored)."""

    def restored(self, evaluator: RuleEvaluator, keys: Iterable[str]) -> None: ...


@attrs.frozen(kw_only=True)
class OwnersStatistics:
    owned: tuple[str, ...] | None  # None: every account (a single daemon)
    timers_not_owned: int  # timers that came due here for an account another replica owns
    adopted_keys: int  # keys taken over from another replica


@attrs.define
class Owners:
    owned: frozenset[str] | None = None
    _handing_over: ChangedKeys = attrs.field(factory=set)  # unsaved changes of accounts given up
    _not_owned: int = 0
    _adopted: int = 0
    _rounds: list[Round] = attrs.field(factory=list)  # summaries waiting for shared rows
    on_round: Callable[[], None] | None = None  # told of each (assignments.finish_summaries)
    # A replica's engine before its first assignment (task.run_engine): a summary due then
    # waits for it (which replica makes it is not known yet); other timers fire as before.
    unassigned: bool = False

    @property
    def replica(self) -> bool:
        """Whether timers are a replica's to sort out (``elsewhere``)."""
        return self.owned is not None or self.unassigned

    def statistics(self) -> OwnersStatistics:
        owned = None if self.owned is None else tuple(sorted(self.owned))
        return OwnersStatistics(
            owned=owned, timers_not_owned=self._not_owned, adopted_keys=self._adopted
        )

    def elsewhere(self, evaluator: RuleEvaluator, key: str) -> bool:
        """Whether a timer of ``key`` that came due is another replica's to decide."""
        if isinstance(evaluator, SummaryRule):  # it decides its period's end itself (summary)
            evaluator.owned, evaluator.gather = self.owned, self._gather
        account = account_of(evaluator, key)
        if account is None or self.owned is None or account in self.owned:
            return False
        self._not_owned += 1
        return True

    def own(self, accounts: Collection[str] | None, changed: ChangedKeys) -> None:
        """Evaluate timers (and save state) of ``accounts`` only; None: of every account. The
        changes of accounts given up that are not saved yet (``changed``) are still saved:
        the next owner starts from them."""
        new = None if accounts is None else frozenset(accounts)
        before = self.owned
        if new is not None:
            self._handing_over |= {
                (b, key) for b, key in changed
                if (account := account_of(b, key)) is not None
                and account not in new and (before is None or account in before)
            }  # fmt: skip
        self.owned = new
        log.info("engine.own accounts=%s", "*" if new is None else ",".join(sorted(new)) or "-")

    def keep_own(self, changed: ChangedKeys) -> None:
        """Leave out of the save about to be taken from ``changed`` the keys of accounts
        another replica owns, but those given up since the last save."""
        owned, handing = self.owned, self._handing_over
        if owned is None:
            return
        changed -= {
            (b, key) for b, key in changed
            if (account := account_of(b, key)) is not None and account not in owned
            and (b, key) not in handing
        }  # fmt: skip
        handing.clear()

    def adopt(
        self,
        evaluators: Sequence[RuleEvaluator],
        stored: Stored,
        now: float,
        accounts: Collection[str],
        shared: Sequence[StateRow],
        *,
        fresh: Collection[str] = (),
    ) -> None:
        """Take ``accounts`` over from the replica that owned them: their keys' state from
        ``shared`` (the shared table's rows, read after that replica's last save) and their
        timers where it left them (``RuleEvaluator.adopt``): what it fired is not fired
        again, a deadline it did not reach is kept. ``fresh``: those of ``accounts`` whose
        events this engine has evaluated all along (it watched them too)."""
        taking, seen = frozenset(accounts), frozenset(fresh)
        by_rule = rows_by_rule(shared)
        adopted = 0
        for b in evaluators:
            rows = {
                r.key: r.data for r in by_rule.get((b.rule.name, b.rule.fingerprint), ())
                if r.data and _account_of_row(r.data) in taking
            }  # fmt: skip
            if isinstance(b, KeyedEvaluator):
                stored.restored(b, list(rows))
                adopted += len(_adopt(b, now, taking, rows, fresh=seen))
            elif isinstance(b, SummaryRule):
                stored.restored(b, list(rows))
                b.take_over(rows, seen)
        self._adopted += adopted
        log.info(
            "engine.adopt accounts=%s keys=%d fresh=%s",
            ",".join(sorted(taking)) or "-", adopted, ",".join(sorted(seen & taking)) or "-",
        )  # fmt: skip

    def _gather(self, done: Round) -> None:
        self._rounds.append(done)
        if self.on_round is not None:
            self.on_round()

    def take_rounds(self) -> list[Round]:
        """The summaries this replica decides that fell due since the last call."""
        rounds, self._rounds = self._rounds, []
        return rounds

    def finish(
        self, rounds: Sequence[Round], shared: Sequence[StateRow], now: float
    ) -> list[Alert]:
        """The alerts of ``rounds``, with the other owners' counts from ``shared`` (the
        shared table's rows, read after they saved the period's end)."""
        alerts = []
        for done in rounds:
            try:
                alerts.append(done.rule.finish(done, shared, now))
            except Exception:  # one broken rule must not silence the others
                log.exception("engine.rule_error rule=%s timer=due", done.rule.rule.name)
        return alerts


def account_of(evaluator: RuleEvaluator, key: str) -> str | None:
    """The account of ``key``, where its state says (None: a key of no account this
    evaluator knows of; it is evaluated and saved by every replica)."""
    if isinstance(evaluator, SummaryRule):  # "account:NAME", its owner's counts of NAME
        name = key.removeprefix("account:")
        return None if name == key else name
    if not isinstance(evaluator, KeyedEvaluator):
        return None
    state = evaluator.keys.get(key)
    account = None if state is None else state.fields.get("account")
    return account if isinstance(account, str) else None


def _adopt(
    b: KeyedEvaluator[Any],
    now: float,
    accounts: frozenset[str],
    shared: Mapping[str, Mapping[str, Any]],
    *,
    fresh: frozenset[str],
) -> list[str]:
    """``b``'s keys of ``accounts`` from ``shared`` (their rows, by key), timers re-armed
    (``resume``); the keys taken over. An account seen here all along (``fresh``) keeps the
    state it has (the rows may be a save behind) and takes what the previous owner decided
    from the rows of keys it has too (``merged``); a key only the rows have ended here. Any
    other account's state here is stale: the rows replace it."""
    mine = {k: s for k, s in b.keys.items() if s.fields.get("account") in accounts}
    b.disarm_keys(mine)
    for key, data in shared.items():
        state = b.load_state(data, dict(data.get("fields") or {}))
        last = data.get("last_alert")
        if isinstance(last, int | float):
            ours = b.last_alert.get(key)
            b.last_alert[key] = max(b.clock.mono(last), -math.inf if ours is None else ours)
        own = mine.get(key)
        if own is not None and state is not None:
            b.keys[key] = b.merged(own, state)
        elif state is not None and state.fields.get("account") not in fresh:
            b.keys[key] = state
    for key, state in mine.items():
        if key not in shared and state.fields.get("account") not in fresh:
            del b.keys[key]  # stale here, and nobody holds it any more
            b.last_alert.pop(key, None)
    taken = [k for k, s in b.keys.items() if s.fields.get("account") in accounts]
    b.resume(now, accounts, taken, fresh=fresh)
    return taken


def _account_of_row(data: Mapping[str, Any]) -> str | None:
    fields = data.get("fields")
    account = fields.get("account") if isinstance(fields, Mapping) else None
    return account if isinstance(account, str) else None
