"""What dispatch writes to the outbox in one transaction, as one value (``Record``): the
outbox writes it, and on a shared database that is away the spool keeps it (store/spool.py)
until it can be."""

from __future__ import annotations

import json
from typing import Any

import attrs

from alertd.events import Alert
from alertd.store.alert_states import AlertState, alert_from_json, alert_to_json
from alertd.store.notifications import Notification


@attrs.frozen(kw_only=True)
class Record:
    """One write of dispatch's, in one transaction: alerts with the state each is recorded
    in, the notifications queued, other alerts' new states. What ``Outbox``'s
    ``record_and_enqueue`` takes, and what the spool keeps while the shared database is away
    (``to_json``/``from_json``: store/spool.py)."""

    now: float  # Unix seconds, as dispatch gave them
    alerts: tuple[tuple[Alert, AlertState], ...] = ()
    notifications: tuple[Notification, ...] = ()
    states: tuple[tuple[str, AlertState], ...] = ()  # other alerts' new states

    def to_json(self) -> str:
        notes = [attrs.asdict(n) | {"alert_ids": list(n.alert_ids)} for n in self.notifications]
        return json.dumps(
            {
                "now": self.now,
                "alerts": [[alert_to_json(a), s] for a, s in self.alerts],
                "notifications": notes,
                "states": [list(s) for s in self.states],
            }
        )

    @classmethod
    def from_json(cls, text: str) -> Record:
        d: dict[str, Any] = json.loads(text)
        return cls(
            now=d["now"],
            alerts=tuple((alert_from_json(a), s) for a, s in d["alerts"]),
            notifications=tuple(
                Notification(**(n | {"alert_ids": tuple(n["alert_ids"])}))
                for n in d["notifications"]
            ),
            states=tuple((i, s) for i, s in d["states"]),
        )
