"""The rules engine: events and the clock in, alerts out. Pure and synchronous: no I/O, no
trio; the caller passes ``now`` (trio clock seconds) and persists ``take_state_changes()``.

Per event: due timers first (those strictly before ``now``), then the index gives the rules
that could match, then side and ``where`` filters, then each rule's evaluator (one per rule,
of its ``type``: engine/rule_types). A rule that raises is logged and skipped for that event;
it never takes the engine down. ``statistics()`` is a snapshot of what it has done.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

import attrs

from alertd.clock import utc_now
from alertd.config.model import Config
from alertd.engine.compile import CompiledRule, compile_rules
from alertd.engine.index import RuleIndex
from alertd.engine.owners import Owners
from alertd.engine.probe import ProbeEvent
from alertd.engine.resets import resets as reset_rules
from alertd.engine.rule_types import ChangedKeys, ClockReference, RuleEvaluator, evaluator_for
from alertd.engine.stored import StoredKeys
from alertd.engine.timers import TimerQueue
from alertd.events import Alert, Event, event_context
from alertd.store.rule_state import RuleStateStore, StateChanges, StateRow, rows_by_rule

log = logging.getLogger(__name__)


@attrs.frozen(kw_only=True)
class RuleStatistics:
    """One rule's share of the engine's memory."""

    name: str
    type: str
    keys: int  # keys with state besides a cooldown (windows, watches, open orders, levels)
    cooldowns: int  # keys whose last alert time is remembered


@attrs.define
class _Counters:
    """What the engine has done since it was made: counted as it works, and the first fields
    of its ``EngineStatistics`` (declared here once)."""

    events_in: int = 0  # events given to ``process``
    events_of_removed_accounts: int = 0  # of those, dropped: their account is no longer configured
    alerts_out: int = 0  # alerts returned by ``process`` and ``advance``
    state_saves: int = 0  # saves of state changes that finished (``record_save``)
    state_save_failures: int = 0
    state_rows_saved: int = 0


@attrs.frozen(kw_only=True)
class EngineStatistics(_Counters):
    """What the engine has done since it was made (its counters, frozen), and what it holds
    now."""

    rules: tuple[RuleStatistics, ...]
    timers_pending: int  # armed timers (absence, order timeouts, pending thresholds, repeats)
    unsaved_changes: int  # keys changed since the last ``take_state_changes``


class Engine:
    """Evaluates events against compiled rules and keeps their state and timers.

    ``accounts`` are the configured account names, used by absence rules to watch accounts
    that have sent nothing yet. ``state``, when given, is read at ``start`` and written by
    ``flush_state`` (or by ``run_engine``, off the event loop)."""

    def __init__(
        self,
        rules: Sequence[CompiledRule],
        *,
        state: RuleStateStore | None = None,
        wall: Callable[[], datetime] = utc_now,
        accounts: Iterable[str] = (),
        accounts_complete: bool = False,
    ) -> None:
        self.state = state
        # ``accounts`` is every enabled account of the config (from_config): state restored
        # for any other account belongs to one removed while alertd was down, and is dropped
        # at start, as a reload drops it (a removed account's silence is not news).
        self._accounts_complete = accounts_complete
        self._accounts = tuple(accounts)
        self._timers = TimerQueue()
        self._clock = ClockReference(wall=wall)
        self._changed: ChangedKeys = set()
        self._stored = StoredKeys()  # which keys' rows the store may hold
        self._counters = _Counters()
        self._evaluators = [self._evaluator(r) for r in rules]
        self._index = RuleIndex(self._evaluators)
        self._globals: dict[str, Any] = dict(rules[0].globals) if rules else {}
        self._started = False
        self._now = 0.0
        # Work a reload left for the next clock reading (process/advance): the engine only
        # learns the time from its caller, and the last reading may be hours old.
        self._pending: list[tuple[RuleEvaluator, Callable[[float], None]]] = []
        self._prune = True  # the next state changes say which (rule, fingerprint) to keep
        # Accounts removed (by a reload, or while alertd was down): their events still in the
        # queue, or arriving before their source stops, are dropped, so no rule starts
        # watching an order or a silence of an account that is gone.
        self._removed: frozenset[str] = frozenset()
        self.owners = Owners()  # replicas: whose timers and state are this engine's (own)

    @classmethod
    def from_config(
        cls,
        config: Config,
        *,
        state: RuleStateStore | None = None,
        wall: Callable[[], datetime] = utc_now,
    ) -> Engine:
        """Compile ``config.rules`` (raises RuleCompileError) into a new engine."""
        rules = compile_rules(config.rules, timezone=config.daemon.timezone)
        accounts = [a.name for a in config.accounts if a.enabled]
        return cls(rules, state=state, wall=wall, accounts=accounts, accounts_complete=True)

    def _evaluator(self, rule: CompiledRule) -> RuleEvaluator:
        return evaluator_for(
            rule, timers=self._timers, clock=self._clock, changed=self._changed, state=self.state
        )

    @property
    def rules(self) -> list[CompiledRule]:
        return [b.rule for b in self._evaluators]

    def statistics(self) -> EngineStatistics:
        return EngineStatistics(
            **attrs.asdict(self._counters, recurse=False),
            rules=tuple(
                RuleStatistics(
                    name=b.rule.name,
                    type=b.rule.type,
                    keys=b.tracked_keys(),
                    cooldowns=len(b.last_alert),
                )
                for b in self._evaluators
            ),
            timers_pending=len(self._timers),
            unsaved_changes=len(self._changed),
        )

    def record_save(self, *, rows: int, ok: bool) -> None:
        """Count a save of ``take_state_changes()`` that finished (for ``statistics``)."""
        self._stored.saved(ok=ok)
        if ok:
            self._counters.state_saves += 1
            self._counters.state_rows_saved += rows
        else:
            self._counters.state_save_failures += 1

    @property
    def started(self) -> bool:
        return self._started

    def start(self, now: float, restored: Sequence[StateRow] | None = None) -> None:
        """Fix the clock reference, restore state (``restored``, else from ``state``), and arm
        the initial timers. ``process``/``advance`` call it on first use if nobody did."""
        if self._started:
            return
        self._started = True
        self._now = now
        self._clock.anchor(now)
        if restored is None and self.state is not None:
            restored = self.state.load_sync()
        by_rule = rows_by_rule(restored or ())
        gone = self._gone_accounts(restored or ()) if self._accounts_complete else frozenset()
        self._removed |= gone
        for b in self._evaluators:
            for row in (rows := by_rule.get((b.rule.name, b.rule.fingerprint), ())):
                if row.data:
                    b.load(row.key, row.data)
            self._stored.restored(b, (row.key for row in rows))
            b.start(now, self._accounts)
            if gone:
                b.accounts_changed(now, self._accounts, gone)
        log.info(
            "engine.start rules=%d restored_keys=%d", len(self._evaluators), len(restored or ())
        )

    def _gone_accounts(self, rows: Sequence[StateRow]) -> frozenset[str]:
        """Accounts named in restored state that the config no longer has."""
        known = set(self._accounts)
        named = set()
        for row in rows:
            fields = row.data.get("fields") if isinstance(row.data, Mapping) else None
            account = fields.get("account") if isinstance(fields, Mapping) else None
            if isinstance(account, str) and account not in known:
                named.add(account)
        if named:
            log.info("engine.forget_accounts accounts=%s", ",".join(sorted(named)))
        return frozenset(named)

    def process(self, event: Event, now: float) -> list[Alert]:
        """Alerts caused by ``event`` at trio time ``now``, after those of timers due
        strictly before ``now`` (an event arriving exactly at a deadline is in time)."""
        return self.process_all((event,), now)

    def process_all(self, events: Iterable[Event], now: float) -> list[Alert]:
        """``process`` of each of ``events`` in turn, all at ``now`` (the engine task's
        batch): the same alerts in the same order, with what does not depend on the event
        (the clock, a reload's pending work, due timers) looked at once. Timers come due
        only before the first event: none armed by an event is due before ``now``."""
        alerts: list[Alert] = []
        timed = False
        for event in events:
            if type(event) is ProbeEvent:  # the heartbeat's, one an interval (engine/probe)
                alerts.append(event.probe.passed_engine())
                continue
            if not timed:
                timed = True
                if not self._started:
                    self.start(now)
                self._now = now
                if self._pending:
                    self._apply_pending(now)
                due = self._timers.next_deadline()
                if due is not None and due < now:
                    alerts += self._fire_timers(now, strict=True)
            self._counters.events_in += 1
            if self._removed and event.account in self._removed:
                self._counters.events_of_removed_accounts += 1
                continue
            candidates = self._index.candidates(event)  # kind, account, instrument, side
            if not candidates:
                continue
            made = len(alerts)
            ctx = event_context(event, self._globals)
            for b in candidates:
                rule = b.rule
                if rule.where is not None and not b.checks_where and not b.where_ok(ctx):
                    continue
                try:
                    alerts.extend(b.on_event(event, ctx, now))
                except Exception:  # one broken rule must not silence the others
                    log.exception("engine.rule_error rule=%s kind=%s", rule.name, event.kind)
            if len(alerts) > made:
                self._counters.alerts_out += len(alerts) - made
                _log_made(alerts[made:])
        return alerts

    def advance(self, now: float) -> list[Alert]:
        """Alerts of timers due at or before ``now`` (absence, order timeouts, pending
        thresholds, repeats), in deadline order."""
        if not self._started:
            self.start(now)
        self._now = now
        if self._pending:
            self._apply_pending(now)
        return self._fire_timers(now, strict=False)

    def next_deadline(self) -> float | None:
        """The earliest armed timer, in trio clock seconds, or None."""
        return self._timers.next_deadline()

    def _fire_timers(self, now: float, *, strict: bool) -> list[Alert]:
        alerts: list[Alert] = []
        timers, owners = self._timers, self.owners
        while (due := timers.pop_due(now, strict=strict)) is not None:
            deadline, owner, key, tag = due
            assert isinstance(owner, RuleEvaluator)
            owner.fired(key, tag)
            if owners.replica and owners.elsewhere(owner, key):
                continue  # another replica's to decide (Owners)
            try:
                alerts.extend(owner.on_timer(key, tag, deadline, now))
            except Exception:  # one broken rule must not silence the others
                log.exception("engine.rule_error rule=%s timer=%s", owner.rule.name, tag)
        self._counters.alerts_out += len(alerts)
        _log_made(alerts)
        return alerts

    def reload(
        self, rules: Sequence[CompiledRule], *, accounts: Iterable[str] | None = None
    ) -> None:
        """Switch to ``rules``, keeping the state and timers of each rule whose name and
        fingerprint (the settings its matching and state depend on) are unchanged.

        ``accounts``, when given, are the enabled account names of the new config: rules
        that watch every account start watching the added ones, and drop the keys of the
        removed ones (no "no events" alert for an account that is gone). None keeps the
        current accounts.

        New rules' timers and added accounts' watches start at the next ``process`` or
        ``advance`` (the next time the engine is told the time), not at the last one, which
        may be long past: a full ``after`` from then, not an alert at once."""
        removed: frozenset[str] = frozenset()
        if accounts is not None:
            new_accounts = tuple(accounts)
            removed = frozenset(self._accounts) - frozenset(new_accounts)
            self._accounts = new_accounts
            self._removed = (self._removed | removed) - frozenset(new_accounts)
        old = {(b.rule.name, b.rule.fingerprint): b for b in self._evaluators}
        resets = reset_rules([b.rule for b in self._evaluators], rules)
        evaluators: list[RuleEvaluator] = []
        for rule in rules:
            b = old.pop((rule.name, rule.fingerprint), None)
            if b is None:
                b = self._evaluator(rule)
                if self._started:
                    self._pending.append((b, functools.partial(b.start, accounts=self._accounts)))
            else:
                b.rebind(rule)
                if self._started and accounts is not None:
                    change = functools.partial(
                        b.accounts_changed, accounts=self._accounts, removed=removed
                    )
                    self._pending.append((b, change))
            evaluators.append(b)
        for gone in old.values():
            gone.disarm_all()
        self._evaluators = evaluators
        self._index = RuleIndex(evaluators)
        if rules:
            self._globals = dict(rules[0].globals)
        self._prune = True
        for name, why in resets:
            log.info("engine.reset rule=%s why=%s", name, why)
        log.info(
            "engine.reload rules=%d reset=%s accounts=%d removed_accounts=%s",
            len(evaluators),
            ",".join(name for name, _ in resets) or "-",
            len(self._accounts),
            ",".join(sorted(removed)) or "-",
        )

    def own(self, accounts: Collection[str] | None) -> None:
        """Evaluate timers and save state of ``accounts`` only (None: all; ``Owners.own``)."""
        self.owners.own(accounts, self._changed)

    def adopt(self, now: float, accounts: Collection[str], shared: Sequence[StateRow],
              *, fresh: Collection[str] = ()) -> None:  # fmt: skip
        """Take ``accounts`` over from another replica (``Owners.adopt``); ``own`` after."""
        self.owners.adopt(self._evaluators, self._stored, now, accounts, shared, fresh=fresh)

    def _apply_pending(self, now: float) -> None:
        current = set(self._evaluators)  # a later reload may have dropped a rule since
        pending, self._pending = self._pending, []
        for b, work in pending:
            if b in current:
                work(now)

    # -- state -----------------------------------------------------------------------------

    def has_state_changes(self) -> bool:
        """Whether ``take_state_changes`` would return something to save."""
        return bool(self._changed) or (self._prune and self._started)

    def take_state_changes(self) -> StateChanges:
        """What changed since the last call, for ``RuleStateStore.save``."""
        self.owners.keep_own(self._changed)
        current = set(self._evaluators)
        rows = self._stored.rows(self._changed, current)
        self._changed.clear()
        keep = None
        if self._prune and self._started:
            keep = frozenset((b.rule.name, b.rule.fingerprint) for b in self._evaluators)
            self._stored.keep_only(current)
            self._prune = False
        return StateChanges(rows=rows, keep=keep)

    def flush_state(self) -> None:
        """Write pending state changes to ``state`` now (blocking; for tools and tests)."""
        changes = self.take_state_changes()
        if self.state is not None and changes:
            self.state.save_sync(changes)
            self._stored.saved(ok=True)

    def snapshot(self) -> list[StateRow]:
        """Every key's persistable state, as ``start(restored=...)`` takes it."""
        rows = []
        for b in self._evaluators:
            for key in b.state_keys():
                data = b.dump(key)
                if data is not None:
                    rows.append(
                        StateRow(
                            rule=b.rule.name, fingerprint=b.rule.fingerprint, key=key, data=data
                        )
                    )
        return rows


def _log_made(alerts: Sequence[Alert]) -> None:
    """The engine's one line per alert it made (dispatch and delivery log theirs)."""
    for alert in alerts:
        log.info(
            "engine.alert rule=%s account=%s key=%s status=%s severity=%s",
            alert.rule,
            alert.account or "-",
            alert.key,
            alert.status,
            alert.severity,
        )
