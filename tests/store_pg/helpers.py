"""Helpers the PostgreSQL store tests share."""

from __future__ import annotations

from collections.abc import Sequence

from alertd.events import Alert
from alertd.store.notifications import Notification
from alertd.store.writes import Record


def sent(alerts: Sequence[Alert], now: float, notifications: Sequence[Notification]) -> Record:
    """Dispatch's one write for ``alerts`` that go out at once: each sent, ``notifications``
    queued."""
    return Record(
        now=now, alerts=tuple((a, "sent") for a in alerts), notifications=tuple(notifications)
    )
