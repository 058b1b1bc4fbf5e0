"""Inhibition: while a source alert fires for an account, hold back that account's alerts
that would only repeat it.

Built in (``dispatch.inhibit_stream_down``): a firing alert of kind ``stream.disconnected``
marks the account's stream down; its ``stream.stale`` alerts and its absence-rule alerts are
held back in favour of that one "stream down" alert. The account counts as up again on an
alert of kind ``stream.connected``, on a resolved alert of the source rule and key, or on any
alert caused by account data (an order, a balance: data flows again).

Configured (``[[dispatch.inhibit]]``): while ``source_rule`` fires for an account, hold back
its alerts of ``target_rules`` / ``target_kinds`` (globs); lifted by a resolved alert of the
source rule.

Every inhibition also ends ``dispatch.inhibit_max`` after it began, so a lost "back up" can
not mute an account for good. Times are trio-clock seconds. Pure, no I/O.
"""

from __future__ import annotations

import attrs

from alertd.config.model import Config
from alertd.dispatch.labels import glob_match
from alertd.events import Alert

DOWN_KIND = "stream.disconnected"
UP_KIND = "stream.connected"
STALE_KIND = "stream.stale"


@attrs.define
class _Down:
    since: float
    rule: str
    key: str


InhibitorState = tuple[dict[str, _Down], dict[tuple[str, str], float]]  # (down, firing)


@attrs.define
class Inhibitor:
    config: Config
    _down: dict[str, _Down] = attrs.field(factory=dict)  # account -> built-in source
    _firing: dict[tuple[str, str], float] = attrs.field(factory=dict)  # (rule, account) -> since

    def _rule_type(self, rule: str) -> str | None:
        found = next((r for r in self.config.rules if r.name == rule), None)
        return None if found is None else found.type

    def snapshot(self) -> InhibitorState:
        """A copy of what is down/firing, for ``restore`` (values are never changed in
        place, so shallow copies suffice)."""
        return dict(self._down), dict(self._firing)

    def restore(self, saved: InhibitorState) -> None:
        self._down, self._firing = dict(saved[0]), dict(saved[1])

    def any_active(self) -> bool:
        """False when ``inhibited_by`` is None for every alert (nothing is down or firing)."""
        return bool(self._firing) or (self.config.dispatch.inhibit_stream_down and bool(self._down))

    def observe(self, alert: Alert, now: float) -> None:
        """Update what is down/firing from ``alert`` (call for every alert, silenced too)."""
        account = alert.account or ""
        kind = alert.event_kind or ""
        if kind == DOWN_KIND and alert.status == "firing":
            self._down.setdefault(account, _Down(since=now, rule=alert.rule, key=alert.key))
        elif account in self._down:
            down = self._down[account]
            resolved = alert.status == "resolved" and (alert.rule, alert.key) == (
                down.rule,
                down.key,
            )
            data = bool(kind) and not kind.startswith("stream.")
            if kind == UP_KIND or resolved or (data and self._rule_type(alert.rule) != "absence"):
                del self._down[account]
        for inhibit in self.config.dispatch.inhibit:
            if alert.rule == inhibit.source_rule:
                if alert.status == "firing":
                    self._firing.setdefault((alert.rule, account), now)
                else:
                    self._firing.pop((alert.rule, account), None)

    def inhibited_by(self, alert: Alert, now: float) -> str | None:
        """Why ``alert`` is held back now (the source rule), or None."""
        account = alert.account or ""
        limit = self.config.dispatch.inhibit_max
        if self.config.dispatch.inhibit_stream_down and account in self._down:
            down = self._down[account]
            if now - down.since > limit:
                del self._down[account]
            elif alert.event_kind == STALE_KIND or self._rule_type(alert.rule) == "absence":
                return down.rule
        for inhibit in self.config.dispatch.inhibit:
            since = self._firing.get((inhibit.source_rule, account))
            if since is None or alert.rule == inhibit.source_rule:
                continue
            if now - since > limit:
                del self._firing[(inhibit.source_rule, account)]
                continue
            if any(glob_match(p, alert.rule) for p in inhibit.target_rules) or any(
                glob_match(p, alert.event_kind or "") for p in inhibit.target_kinds
            ):
                return inhibit.source_rule
        return None
