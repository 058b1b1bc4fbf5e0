"""What every rule behaviour shares: its key, timers, cooldown, alert building and the
conversion of its per-key state to and from the JSON rows kept in SQLite.

Times inside a behaviour are trio-clock seconds (monotonic). Persisted times are Unix epoch
seconds, converted through the one (clock, wall) reference pair the engine took at start,
so a restart (new monotonic origin) restores deadlines at the same wall-clock moment.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from typing import Any, ClassVar

import attrs

from alertd.engine.alerts import (
    build_alert,
    default_body,
    event_identity,
    summary,
    timer_identity,
)
from alertd.engine.compile import CompiledRule, _common_fields
from alertd.engine.timers import TimerQueue
from alertd.events import Alert, AlertStatus, Event

log = logging.getLogger(__name__)

SWEEP_MIN = 1024  # keys kept before cooldown entries that no longer matter are swept
MARKET_KINDS = frozenset({"trade", "book"})
# Fields copied into persisted state so a restored key still renders account, symbol, ...
PERSISTED_FIELDS = ("exchange", "account", "kind", "symbol", "currency", "side", "order_id")


@attrs.define
class Runtime:
    """Engine services a behaviour uses: the timer heap, clocks, and the dirty set."""

    timers: TimerQueue
    wall: Callable[[], datetime]
    mono_ref: float = 0.0
    epoch_ref: float = 0.0
    dirty: set[tuple[Behaviour, str]] = attrs.field(factory=set)

    def epoch(self, mono: float) -> float:
        return self.epoch_ref + (mono - self.mono_ref)

    def mono(self, epoch: float) -> float:
        return self.mono_ref + (epoch - self.epoch_ref)

    def wall_at(self, mono: float) -> datetime:
        return datetime.fromtimestamp(self.epoch(mono), UTC)


class Behaviour:
    """One rule's state and decisions. Subclasses implement ``on_event`` and ``on_timer``."""

    checks_where: ClassVar[bool] = False  # True: the behaviour applies ``where`` itself

    def __init__(self, rule: CompiledRule, rt: Runtime) -> None:
        self.rule = rule
        self.rt = rt
        self.cooldown = rule.settings.cooldown
        self.repeat = rule.settings.repeat
        self.last_alert: dict[str, float] = {}
        self._timers: dict[tuple[str, str], int] = {}
        self._blank = dict.fromkeys(_common_fields(rule.kinds))
        self._where_error_logged = False
        self._sweep_at = SWEEP_MIN

    def rebind(self, rule: CompiledRule) -> None:
        """Take an edited rule with the same fingerprint (message, channels, cooldown or
        repeat changed) and keep this behaviour's state."""
        self.rule = rule
        self.cooldown = rule.settings.cooldown
        self.repeat = rule.settings.repeat
        if self.repeat is None:
            for key, tag in list(self._timers):
                if tag == "repeat":
                    self.disarm(key, tag)

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

    # -- timers ----------------------------------------------------------------------------

    def arm(self, key: str, tag: str, deadline: float) -> None:
        old = self._timers.pop((key, tag), None)
        if old is not None:
            self.rt.timers.cancel(old)
        self._timers[(key, tag)] = self.rt.timers.schedule(deadline, self, key, tag)

    def disarm(self, key: str, tag: str) -> None:
        seq = self._timers.pop((key, tag), None)
        if seq is not None:
            self.rt.timers.cancel(seq)

    def forget_accounts(self, entries: dict[str, Any], removed: frozenset[str], *tags: str) -> None:
        """Drop the ``entries`` (key -> an object with ``fields``) of accounts in
        ``removed``, with their cooldowns and ``tags`` timers, and have their saved state
        deleted: a removed account's keys send nothing more, not even a resolution."""
        for key, entry in list(entries.items()):
            if entry.fields.get("account") in removed:
                del entries[key]
                self.last_alert.pop(key, None)
                for tag in tags:
                    self.disarm(key, tag)
                self.rt.dirty.add((self, key))

    def disarm_all(self) -> None:
        for seq in self._timers.values():
            self.rt.timers.cancel(seq)
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
        *,
        key: str,
        status: AlertStatus,
        ctx: dict[str, Any],
        cause: str,
        now: float,
        headline: str,
    ) -> Alert:
        """Build the alert; a firing one starts the key's cooldown."""
        ctx["key"] = key
        ctx["status"] = status
        ctx.setdefault("now", self.rt.wall())
        account = ctx.get("account")
        prefix = f"[{account}] " if account else ""
        word = "RESOLVED " if status == "resolved" else ""
        default_title = f"{prefix}{word}{headline}"
        alert = build_alert(
            self.rule,
            key=key,
            status=status,
            ctx=ctx,
            cause=cause,
            created=ctx["now"],
            default_title=default_title,
            default_text=default_body(ctx),
        )
        if status == "firing":
            self.last_alert[key] = now
            self.rt.dirty.add((self, key))
        log.debug("engine.alert rule=%s key=%s status=%s", self.rule.name, key, status)
        return alert

    @staticmethod
    def event_cause(event: Event) -> str:
        return event_identity(event)

    def timer_cause(self, tag: str, deadline: float) -> str:
        return timer_identity(tag, self.rt.epoch(deadline))

    @staticmethod
    def event_summary(ctx: Mapping[str, Any]) -> str:
        return summary(ctx)

    # -- behaviour -------------------------------------------------------------------------

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

    # -- persistence -----------------------------------------------------------------------

    def state_keys(self) -> Iterable[str]:
        return list(self.last_alert)

    def dump(self, key: str) -> dict[str, Any] | None:
        """The key's state as JSON-able data (epoch times), or None when there is none."""
        last = self.last_alert.get(key)
        return None if last is None else {"last_alert": self.rt.epoch(last)}

    def load(self, key: str, data: Mapping[str, Any]) -> None:
        last = data.get("last_alert")
        if isinstance(last, int | float):
            self.last_alert[key] = self.rt.mono(last)

    def forget_stale(self, now: float) -> None:
        """Drop cooldown entries that can no longer suppress anything (bounds memory)."""
        if self.cooldown is None or len(self.last_alert) < self._sweep_at:
            return
        for key, last in list(self.last_alert.items()):
            if now - last >= self.cooldown:
                del self.last_alert[key]
                self.rt.dirty.add((self, key))
        # Sweep again only once the map has doubled: amortized O(1) per alert.
        self._sweep_at = max(SWEEP_MIN, 2 * len(self.last_alert))


def persisted_fields(ctx: Mapping[str, Any]) -> dict[str, str]:
    return {f: str(ctx[f]) for f in PERSISTED_FIELDS if ctx.get(f) is not None}


def plain_fields(ctx: Mapping[str, Any], names: Iterable[str]) -> dict[str, Any]:
    """The event's fields out of a full evaluation context (helpers left out)."""
    return {n: ctx[n] for n in names if n in ctx}
