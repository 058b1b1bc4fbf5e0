"""What every rule type's evaluator shares: its key, timers, cooldown, alert building and the
conversion of its per-key state to and from the JSON rows kept in SQLite.

Times inside an evaluator are trio-clock seconds (monotonic). Persisted times are Unix epoch
seconds, converted through the one ``ClockReference`` the engine took at start, so a restart
(new monotonic origin) restores deadlines at the same wall-clock moment.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Iterable, Mapping
from typing import Any, ClassVar, Generic, Literal, Protocol, TypeVar

from alertd.engine.alerts import (
    build_alert,
    default_body,
    event_identity,
    summary,
    timer_identity,
)
from alertd.engine.compile import CompiledRule, _common_fields
from alertd.engine.rule_types.clock import ClockReference
from alertd.engine.timers import TimerQueue
from alertd.events import Alert, AlertStatus, Event

log = logging.getLogger(__name__)

SWEEP_MIN = 1024  # keys kept before cooldown entries that no longer matter are swept
MARKET_KINDS = frozenset({"trade", "book"})
# Fields copied into persisted state so a restored key still renders account, symbol, ...
PERSISTED_FIELDS = ("exchange", "account", "kind", "symbol", "currency", "side", "order_id")

# What a due timer of a key makes (KeyedEvaluator.timer_alert): its first alert, or a repeat.
TimerAlert = Literal["first", "repeat"]

# (evaluator, key) pairs whose state changed since the engine last took the changes to save.
ChangedKeys = set[tuple["RuleEvaluator", str]]


class RuleEvaluator:
    """One rule's state and decisions: what a matching event or a due timer does. One
    subclass per rule ``type``; they implement ``on_event`` and ``on_timer``."""

    checks_where: ClassVar[bool] = False  # True: the evaluator applies ``where`` itself

    def __init__(
        self,
        rule: CompiledRule,
        *,
        timers: TimerQueue,
        clock: ClockReference,
        changed: ChangedKeys,
    ) -> None:
        self.rule = rule
        self.timers = timers
        self.clock = clock
        self.changed = changed
        self.cooldown = rule.settings.cooldown
        self.repeat = rule.settings.repeat
        self.last_alert: dict[str, float] = {}
        self._timers: dict[tuple[str, str], int] = {}
        self._blank = dict.fromkeys(_common_fields(rule.kinds))
        self._where_error_logged = False
        self._sweep_at = SWEEP_MIN

    def rebind(self, rule: CompiledRule) -> None:
        """Take an edited rule with the same fingerprint (message, channels, cooldown or
        repeat changed) and keep this evaluator's state."""
        self.rule = rule
        self.cooldown = rule.settings.cooldown
        self.repeat = rule.settings.repeat
        if self.repeat is None:
            for key, tag in list(self._timers):
                if tag == "repeat":
                    self.disarm(key, tag)

    def mark(self, key: str) -> None:
        """``key``'s state changed: save it with the next state changes."""
        self.changed.add((self, key))

    # -- matching and keys ---------------------------------------------------------------

    def where_ok(self, ctx: dict[str, Any]) -> bool:
        where = self.rule.where
        if where is None:
            return True
        try:
            return bool(where(ctx))
        except Exception as exc:  # a user's expression over this event: no match, said once
            if not self._where_error_logged:
                self._where_error_logged = True
                log.warning(
                    "engine.where_error rule=%s error=%s: %s (treated as no match; logged "
                    "once per rule)",
                    self.rule.name,
                    type(exc).__name__,
                    exc,
                )
            return False

    def default_key(self, event: Event) -> str:
        return event.account

    def key_for(self, event: Event, ctx: dict[str, Any]) -> str:
        template = self.rule.key
        if template is None:
            return self.default_key(event)
        try:
            return template.render(ctx).strip()
        except Exception as exc:  # fall back to the default key rather than lose the alert
            log.warning(
                "engine.template_error rule=%s field=key error=%s: %s",
                self.rule.name,
                type(exc).__name__,
                exc,
            )
            return self.default_key(event)

    @staticmethod
    def event_fields(ctx: Mapping[str, Any]) -> Mapping[str, Any]:
        """What a key keeps of the event it last saw, to render its later alerts: the
        event's context itself, not a copy. The engine makes one context an event and never
        changes it, so every rule the event meets shares it; a copy a rule would cost more
        than the rest of its work on the event. ``kept`` reads it."""
        return ctx

    def kept(self, fields: Mapping[str, Any]) -> dict[str, Any]:
        """The fields every kind this rule matches has, out of what a key kept
        (``event_fields``, or the fields restored with its state)."""
        return {n: fields.get(n) for n in self._blank}

    # -- timers ----------------------------------------------------------------------------

    def arm(self, key: str, tag: str, deadline: float) -> None:
        armed = self._timers.get((key, tag))
        if armed is None:
            self._timers[(key, tag)] = self.timers.schedule(deadline, self, key, tag)
        else:
            self._timers[(key, tag)] = self.timers.reschedule(armed, deadline)

    def disarm(self, key: str, tag: str) -> None:
        seq = self._timers.pop((key, tag), None)
        if seq is not None:
            self.timers.cancel(seq)

    def disarm_all(self) -> None:
        for seq in self._timers.values():
            self.timers.cancel(seq)
        self._timers.clear()

    def fired(self, key: str, tag: str) -> None:
        """Called by the engine as a timer of ``key``/``tag`` fires: it is no longer armed."""
        self._timers.pop((key, tag), None)

    def next_repeat(self, deadline: float, now: float) -> float:
        assert self.repeat is not None
        at = deadline + self.repeat
        # After a long pause (a restart, a blocked loop) send one repeat, not a backlog.
        return at if at > now else now + self.repeat

    # -- cooldown and alerts ---------------------------------------------------------------

    def cooling(self, key: str, now: float) -> bool:
        if self.cooldown is None:
            return False
        last = self.last_alert.get(key)
        return last is not None and now - last < self.cooldown

    def deferred_by_cooldown(self, key: str, tag: str, now: float) -> bool:
        """True when ``key`` is cooling down: its ``tag`` timer is then armed again for the
        cooldown's end, so the alert it would make now comes then."""
        if not self.cooling(key, now):
            return False
        assert self.cooldown is not None
        self.arm(key, tag, self.last_alert[key] + self.cooldown)
        return True

    def context(self, fields: Mapping[str, Any] | None, **extras: Any) -> dict[str, Any]:
        ctx = dict(self.rule.globals)
        ctx.update(self._blank)
        if fields:
            ctx.update(fields)
        ctx.update(rule=self.rule.name, type=self.rule.type, severity=self.rule.settings.severity)
        ctx.update(extras)
        return ctx

    def make_alert(
        self,
        key: str,
        status: AlertStatus,
        ctx: dict[str, Any],
        *,
        cause: str,
        now: float,
        headline: str,
    ) -> Alert:
        """Build the alert; a firing one starts the key's cooldown."""
        ctx["key"] = key
        ctx["status"] = status
        ctx.setdefault("now", self.clock.wall())
        account = ctx.get("account")
        prefix = f"[{account}] " if account else ""
        word = "RESOLVED " if status == "resolved" else ""
        alert = build_alert(
            self.rule,
            key=key,
            status=status,
            ctx=ctx,
            cause=cause,
            created=ctx["now"],
            default_title=f"{prefix}{word}{headline}",
            default_text=default_body(ctx, localtime=self.rule.globals["localtime"]),
        )
        if status == "firing":
            self.last_alert[key] = now
            self.mark(key)
        log.debug("engine.alert rule=%s key=%s status=%s", self.rule.name, key, status)
        return alert

    @staticmethod
    def event_cause(event: Event) -> str:
        return event_identity(event)

    def timer_cause(self, tag: str, deadline: float) -> str:
        return timer_identity(tag, self.clock.epoch(deadline))

    @staticmethod
    def event_summary(ctx: Mapping[str, Any]) -> str:
        return summary(ctx)

    # -- decisions -------------------------------------------------------------------------

    def on_event(self, event: Event, ctx: dict[str, Any], now: float) -> list[Alert]:
        raise NotImplementedError

    def on_timer(self, key: str, tag: str, deadline: float, now: float) -> list[Alert]:
        return []

    def start(self, now: float, accounts: Iterable[str]) -> None:
        """Called once the clock is known (and after restore): arm initial timers."""

    def accounts_changed(
        self, now: float, accounts: Iterable[str], removed: frozenset[str]
    ) -> None:
        """Called on a reload that kept this rule: ``accounts`` are now the enabled ones and
        ``removed`` those no longer configured or enabled."""

    # -- persistence and memory ------------------------------------------------------------

    def tracked_keys(self) -> int:
        """Keys with state held in memory besides cooldowns (windows, watches, orders)."""
        return 0

    def state_keys(self) -> Iterable[str]:
        return list(self.last_alert)

    def dump(self, key: str) -> dict[str, Any] | None:
        """The key's state as JSON-able data (epoch times), or None when there is none."""
        last = self.last_alert.get(key)
        return None if last is None else {"last_alert": self.clock.epoch(last)}

    def load(self, key: str, data: Mapping[str, Any]) -> None:
        last = data.get("last_alert")
        if isinstance(last, int | float):
            self.last_alert[key] = self.clock.mono(last)

    def forget_stale(self, now: float) -> None:
        """Drop cooldown entries that can no longer suppress anything (bounds memory)."""
        if self.cooldown is None or len(self.last_alert) < self._sweep_at:
            return
        for key, last in list(self.last_alert.items()):
            if now - last >= self.cooldown:
                del self.last_alert[key]
                self.mark(key)
        # Sweep again only once the map has doubled: amortized O(1) per alert.
        self._sweep_at = max(SWEEP_MIN, 2 * len(self.last_alert))

    # -- epoch conversions for persisted state ---------------------------------------------

    def epoch_or_none(self, mono: float | None) -> float | None:
        return None if mono is None else self.clock.epoch(mono)

    def mono_or_none(self, epoch: Any) -> float | None:
        return None if epoch is None else self.clock.mono(epoch)


class KeyState(Protocol):
    """What a keyed evaluator keeps per key: at least the fields its alerts render."""

    fields: Mapping[str, Any]  # ``event_fields`` of its last event; read through ``kept``


S = TypeVar("S", bound=KeyState)


class KeyedEvaluator(RuleEvaluator, Generic[S]):
    """An evaluator that keeps one state object per key in ``keys`` (absence, threshold,
    order_timeout): persisted with the key's cooldown, forgotten with a removed account."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.keys: dict[str, S] = {}

    def dump_state(self, state: S) -> dict[str, Any] | None:
        """``state`` as JSON-able data (its ``fields`` are added), or None: nothing to keep."""
        raise NotImplementedError

    def load_state(self, data: Mapping[str, Any], fields: dict[str, Any]) -> S | None:
        """The state ``dump_state`` wrote, or None when ``data`` holds none."""
        raise NotImplementedError

    def on_timer(self, key: str, tag: str, deadline: float, now: float) -> list[Alert]:
        state = self.keys.get(key)
        return [] if state is None else self.on_key_timer(key, state, tag, deadline, now)

    def on_key_timer(
        self, key: str, state: S, tag: str, deadline: float, now: float
    ) -> list[Alert]:
        """A timer of a key that still has state came due. What the rule types whose timers
        make alerts (absence, order_timeout) share: ``timer_alert`` says which alert it makes;
        a first one waits while the key cools down (its timer is armed again for the
        cooldown's end), a repeat does not; ``fire_timer`` updates the state and re-arms."""
        made = self.timer_alert(state, tag)
        if made is None or (made == "first" and self.deferred_by_cooldown(key, tag, now)):
            return []
        cause = self.timer_cause(tag, deadline)
        alert = self.fire_timer(
            key, state, tag, first=made == "first", cause=cause, due=deadline, now=now
        )
        return [alert]

    def timer_alert(self, state: S, tag: str) -> TimerAlert | None:
        """The alert a due ``tag`` timer makes: the key's ``first`` (it starts firing) or a
        ``repeat`` of the firing one; None (the default): none."""
        return None

    def fire_timer(
        self, key: str, state: S, tag: str, *, first: bool, cause: str, due: float, now: float
    ) -> Alert:
        """The firing alert the ``tag`` timer due at ``due`` makes (``timer_alert`` said it
        makes one); it updates the state and arms the repeat."""
        raise NotImplementedError

    def tracked_keys(self) -> int:
        return len(self.keys)

    def state_keys(self) -> list[str]:
        return list({*self.last_alert, *self.keys})

    def dump(self, key: str) -> dict[str, Any] | None:
        data = super().dump(key) or {}
        state = self.keys.get(key)
        saved = None if state is None else self.dump_state(state)
        if state is not None and saved is not None:
            data.update(saved, fields=persisted_fields(self.kept(state.fields)))
        return data or None

    def load(self, key: str, data: Mapping[str, Any]) -> None:
        super().load(key, data)
        state = self.load_state(data, dict(data.get("fields") or {}))
        if state is not None:
            self.keys[key] = state

    # Replicas (engine/owners adopts keys from another replica's rows): the key's state
    # when both this process and the previous owner had one, and its timers re-armed.
    def merged(self, mine: S, shared: S) -> S:
        return shared  # the owner's, with its timers' decisions

    def resume(self, now: float, accounts: frozenset[str], keys: Iterable[str], *,
               fresh: frozenset[str]) -> None: ...  # fmt: skip

    def disarm_keys(self, keys: Collection[str]) -> None:
        for key, tag in [kt for kt in self._timers if kt[0] in keys]:
            self.disarm(key, tag)

    def forget_accounts(self, removed: frozenset[str], *tags: str) -> None:
        """Drop the keys of accounts in ``removed``, with their cooldowns and ``tags`` timers,
        and have their saved state deleted: a removed account's keys send nothing more, not
        even a resolution."""
        for key, state in list(self.keys.items()):
            if state.fields.get("account") in removed:
                del self.keys[key]
                self.last_alert.pop(key, None)
                for tag in tags:
                    self.disarm(key, tag)
                self.mark(key)


def persisted_fields(ctx: Mapping[str, Any]) -> dict[str, str]:
    return {f: str(ctx[f]) for f in PERSISTED_FIELDS if ctx.get(f) is not None}
