"""The rules engine: events and the clock in, alerts out. Pure and synchronous: no I/O, no
trio; the caller passes ``now`` (trio clock seconds) and persists ``take_state_changes()``.

Per event: due timers first (those strictly before ``now``), then the index gives the rules
that could match, then side and ``where`` filters, then each rule's behaviour. A rule that
raises is logged and skipped for that event; it never takes the engine down.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from alertd.config.model import Config
from alertd.engine.compile import CompiledRule, compile_rules
from alertd.engine.index import RuleIndex
from alertd.engine.rule_types import Behaviour, Runtime, behaviour_for
from alertd.engine.timers import TimerQueue
from alertd.events import Alert, Event, event_fields
from alertd.store.rule_state import RuleStateStore, StateChanges, StateRow, rows_by_rule

log = logging.getLogger(__name__)


def utc_now() -> datetime:
    return datetime.now(UTC)


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
        self._wall = wall
        self._accounts = tuple(accounts)
        self._rt = Runtime(timers=TimerQueue(), wall=wall)
        self._behaviours = [behaviour_for(r, self._rt) for r in rules]
        self._index = RuleIndex(self._behaviours)
        self._globals: dict[str, Any] = dict(rules[0].globals) if rules else {}
        self._started = False
        self._now = 0.0
        # Work a reload left for the next clock reading (process/advance): the engine only
        # learns the time from its caller, and the last reading may be hours old.
        self._pending: list[tuple[Behaviour, Callable[[float], None]]] = []
        self._prune = True  # the next state changes say which (rule, fingerprint) to keep
        # Accounts removed (by a reload, or while alertd was down): their events still in the
        # queue, or arriving before their source stops, are dropped, so no rule starts
        # watching an order or a silence of an account that is gone.
        self._removed: frozenset[str] = frozenset()

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

    @property
    def rules(self) -> list[CompiledRule]:
        return [b.rule for b in self._behaviours]

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
        self._rt.mono_ref = now
        self._rt.epoch_ref = self._wall().timestamp()
        if restored is None and self.state is not None:
            restored = self.state.load_sync()
        by_rule = rows_by_rule(restored or ())
        gone = self._gone_accounts(restored or ()) if self._accounts_complete else frozenset()
        self._removed |= gone
        for b in self._behaviours:
            for row in by_rule.get((b.rule.name, b.rule.fingerprint), ()):
                if row.data:
                    b.load(row.key, row.data)
            b.start(now, self._accounts)
            if gone:
                b.accounts_changed(now, self._accounts, gone)
        log.info(
            "engine.start rules=%d restored_keys=%d", len(self._behaviours), len(restored or ())
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
        if not self._started:
            self.start(now)
        self._now = now
        if self._pending:
            self._apply_pending(now)
        alerts = self._fire_timers(now, strict=True)
        if self._removed and event.account in self._removed:
            return alerts
        candidates = self._index.candidates(event)
        if not candidates:
            return alerts
        ctx: dict[str, Any] | None = None
        for b in candidates:
            rule = b.rule
            if rule.sides is not None and getattr(event, "side", None) not in rule.sides:
                continue
            if ctx is None:
                ctx = dict(self._globals)
                ctx.update(event_fields(event))
            if rule.where is not None and not b.checks_where and not b.where_ok(ctx):
                continue
            try:
                alerts.extend(b.on_event(event, ctx, now))
            except Exception:  # one broken rule must not silence the others
                log.exception("engine.rule_error rule=%s kind=%s", rule.name, event.kind)
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
        return self._rt.timers.next_deadline()

    def _fire_timers(self, now: float, *, strict: bool) -> list[Alert]:
        alerts: list[Alert] = []
        timers = self._rt.timers
        while (due := timers.pop_due(now, strict=strict)) is not None:
            deadline, owner, key, tag = due
            assert isinstance(owner, Behaviour)
            owner.fired(key, tag)
            try:
                alerts.extend(owner.on_timer(key, tag, deadline, now))
            except Exception:  # one broken rule must not silence the others
                log.exception("engine.rule_error rule=%s timer=%s", owner.rule.name, tag)
        return alerts

    def reload(
        self, rules: Sequence[CompiledRule], *, accounts: Iterable[str] | None = None
    ) -> None:
        """Switch to ``rules``, keeping the state and timers of each rule whose name and
        fingerprint (its matching and behaviour settings) are unchanged.

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
        old = {(b.rule.name, b.rule.fingerprint): b for b in self._behaviours}
        behaviours: list[Behaviour] = []
        for rule in rules:
            b = old.pop((rule.name, rule.fingerprint), None)
            if b is None:
                b = behaviour_for(rule, self._rt)
                if self._started:
                    self._pending.append((b, functools.partial(b.start, accounts=self._accounts)))
            else:
                b.rebind(rule)
                if self._started and accounts is not None:
                    change = functools.partial(
                        b.accounts_changed, accounts=self._accounts, removed=removed
                    )
                    self._pending.append((b, change))
            behaviours.append(b)
        for gone in old.values():
            gone.disarm_all()
        self._behaviours = behaviours
        self._index = RuleIndex(behaviours)
        if rules:
            self._globals = dict(rules[0].globals)
        self._prune = True
        log.info(
            "engine.reload rules=%d dropped=%d accounts=%d removed_accounts=%d",
            len(behaviours),
            len(old),
            len(self._accounts),
            len(removed),
        )

    def _apply_pending(self, now: float) -> None:
        current = set(self._behaviours)  # a later reload may have dropped a rule since
        pending, self._pending = self._pending, []
        for b, work in pending:
            if b in current:
                work(now)

    # -- state -----------------------------------------------------------------------------

    def has_state_changes(self) -> bool:
        """Whether ``take_state_changes`` would return something to save."""
        return bool(self._rt.dirty) or (self._prune and self._started)

    def take_state_changes(self) -> StateChanges:
        """What changed since the last call, for ``RuleStateStore.save``."""
        current = set(self._behaviours)
        rows = tuple(
            StateRow(rule=b.rule.name, fingerprint=b.rule.fingerprint, key=key, data=b.dump(key))
            for b, key in self._rt.dirty
            if b in current
        )
        self._rt.dirty.clear()
        keep = None
        if self._prune and self._started:
            keep = frozenset((b.rule.name, b.rule.fingerprint) for b in self._behaviours)
            self._prune = False
        return StateChanges(rows=rows, keep=keep)

    def flush_state(self) -> None:
        """Write pending state changes to ``state`` now (blocking; for tools and tests)."""
        changes = self.take_state_changes()
        if self.state is not None and changes:
            self.state.save_sync(changes)

    def snapshot(self) -> list[StateRow]:
        """Every key's persistable state, as ``start(restored=...)`` takes it."""
        rows = []
        for b in self._behaviours:
            for key in b.state_keys():
                data = b.dump(key)
                if data is not None:
                    rows.append(
                        StateRow(
                            rule=b.rule.name, fingerprint=b.rule.fingerprint, key=key, data=data
                        )
                    )
        return rows
