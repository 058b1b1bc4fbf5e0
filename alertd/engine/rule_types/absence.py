"""``type = "absence"``: no matching event for ``after`` seconds, per key.

A key is watched once seen, or from start when declared: a rule with the default key watches
each account it names (``account = [...]``), or every enabled account of the config when it
names none; for market kinds (trade, book) the default key is account/symbol and is declared
for each account x ``symbol`` listed. A reload that adds accounts declares their keys (a full
``after`` from then); one that removes or disables accounts drops their keys, whatever the
key. Fires once, ``repeat`` re-sends, and the next matching event resolves it. After a
restart every remembered key gets a full ``after`` again, so alertd's own downtime (reported
as ``stream.gap``) does not read as the account's silence.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import attrs

from alertd.engine.rule_types.base import MARKET_KINDS, KeyedEvaluator, TimerAlert
from alertd.events import Alert, AlertStatus, Event
from alertd.messages.formats import duration


@attrs.define
class _Key:
    fields: Mapping[str, Any] = attrs.field(factory=dict)
    last_seen: float | None = None
    firing: bool = False


class AbsenceRule(KeyedEvaluator[_Key]):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        after = self.rule.settings.after
        assert after is not None
        self.after = after
        self.per_symbol = bool(self.rule.kinds) and self.rule.kinds <= MARKET_KINDS

    def default_key(self, event: Event) -> str:
        symbol = getattr(event, "symbol", None)
        if self.per_symbol and symbol is not None:
            return f"{event.account}/{symbol}"
        return event.account

    def declared(self, accounts: Iterable[str]) -> list[tuple[str, dict[str, Any]]]:
        if self.rule.key is not None:
            return []
        names = sorted(self.rule.accounts) if self.rule.accounts is not None else list(accounts)
        if not self.per_symbol:
            return [(a, {"account": a}) for a in names]
        symbols = sorted(self.rule.symbols or ())
        return [(f"{a}/{s}", {"account": a, "symbol": s}) for a in names for s in symbols]

    def start(self, now: float, accounts: Iterable[str]) -> None:
        for key, fields in self.declared(accounts):
            if key not in self.keys:
                self.keys[key] = _Key(fields=fields)
        for key, st in self.keys.items():
            if st.firing:
                if self.repeat is not None:
                    self.arm(key, "repeat", now + self.repeat)
            else:
                self.arm(key, "silent", now + self.after)

    def accounts_changed(
        self, now: float, accounts: Iterable[str], removed: frozenset[str]
    ) -> None:
        # A removed or disabled account sends nothing more: its silence is not news.
        self.forget_accounts(removed, "silent", "repeat")
        # An added account is watched from now, as every account is from start.
        for key, fields in self.declared(accounts):
            if key not in self.keys:
                self.keys[key] = _Key(fields=fields)
                self.arm(key, "silent", now + self.after)

    def merged(self, mine: _Key, shared: _Key) -> _Key:
        # The previous owner decided whether it fires; this replica may have seen later
        # events (it watched too): the silence counts from the last either saw.
        seen = [t for t in (mine.last_seen, shared.last_seen) if t is not None]
        return attrs.evolve(shared, last_seen=max(seen) if seen else None)

    def resume(
        self, now: float, accounts: frozenset[str], keys: Iterable[str], *, fresh: frozenset[str]
    ) -> None:
        taken = list(keys)
        for key, fields in self.declared(accounts):
            if fields["account"] in accounts and key not in self.keys:
                self.keys[key] = _Key(fields=fields)  # nobody saw it yet: watched from now
                taken.append(key)
        for key in taken:
            st = self.keys[key]
            if st.firing:
                if self.repeat is not None:
                    last = self.last_alert.get(key, now)
                    self.arm(key, "repeat", max(now, last + self.repeat))
            elif st.last_seen is not None and st.fields.get("account") in fresh:
                self.arm(key, "silent", st.last_seen + self.after)
            else:
                # Nobody watched it while it changed hands: that is no silence of the
                # account (the cluster reports a blind window), so a full ``after`` from
                # now, as after a restart.
                self.arm(key, "silent", now + self.after)

    def on_event(self, event: Event, ctx: dict[str, Any], now: float) -> list[Alert]:
        key = self.key_for(event, ctx)
        st = self.keys.get(key)
        if st is None:
            st = self.keys[key] = _Key()
        st.fields = self.event_fields(ctx)
        alerts: list[Alert] = []
        if st.firing:
            st.firing = False
            self.disarm(key, "repeat")
            alerts.append(self._alert(key, st, "resolved", self.event_cause(event), now))
        st.last_seen = now
        self.arm(key, "silent", now + self.after)
        self.mark(key)
        return alerts

    def timer_alert(self, state: _Key, tag: str) -> TimerAlert | None:
        if tag == "silent" and not state.firing:
            return "first"
        return "repeat" if tag == "repeat" and state.firing else None

    def fire_timer(
        self, key: str, state: _Key, tag: str, *, first: bool, cause: str, due: float, now: float
    ) -> Alert:
        if first:
            state.firing = True
            if self.repeat is not None:
                self.arm(key, "repeat", now + self.repeat)
        else:
            self.arm(key, "repeat", self.next_repeat(due, now))
        return self._alert(key, state, "firing", cause, now)

    def _alert(self, key: str, st: _Key, status: AlertStatus, cause: str, now: float) -> Alert:
        silent_for = None if st.last_seen is None else now - st.last_seen
        last_seen = None if st.last_seen is None else self.clock.wall_at(st.last_seen)
        kinds = ", ".join(sorted(self.rule.kinds)) if len(self.rule.kinds) <= 3 else "events"
        if status == "firing":
            quiet = duration(silent_for if silent_for is not None else self.after)
            seen = "" if st.last_seen is not None else " (never seen since start)"
            head = f"{self.rule.name}: no {kinds} for {quiet} ({key}){seen}"
        else:
            head = f"{self.rule.name}: {kinds} back after {duration(silent_for)} ({key})"
        fields = self.kept(st.fields)
        ctx = self.context(fields, after=self.after, last_seen=last_seen, silent_for=silent_for)
        return self.make_alert(key, status, ctx, cause=cause, now=now, headline=head)

    def dump_state(self, state: _Key) -> dict[str, Any]:
        return {"last_seen": self.epoch_or_none(state.last_seen), "firing": state.firing}

    def load_state(self, data: Mapping[str, Any], fields: dict[str, Any]) -> _Key | None:
        if "firing" not in data:
            return None
        return _Key(
            fields=fields,
            firing=bool(data["firing"]),
            last_seen=self.mono_or_none(data.get("last_seen")),
        )
