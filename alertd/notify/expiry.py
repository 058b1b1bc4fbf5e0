"""How long a row is tried: the retry backoff, the age limit (``dispatch.max_age``, counted
from when the row became due), and the report to ``dispatch.fallback_channel`` when rows are
given up on. Pure functions; ``outcomes`` records what they decide."""

from __future__ import annotations

import random
from collections.abc import Sequence

from alertd.config.model import Config, DispatchSettings
from alertd.dispatch.router import rows_for
from alertd.messages.notices import undelivered_notice
from alertd.store.notifications import Notification, OutboxRow

JITTER = 0.2  # retry delays vary by +-20% so many rows do not retry in lockstep


def retry_delay(attempts: int, initial: float, maximum: float, rng: random.Random) -> float:
    """Backoff after the ``attempts``-th failure (1-based): initial, 2x, 4x, ... up to maximum,
    each varied by +-JITTER."""
    base = min(maximum, initial * 2 ** max(0, attempts - 1))
    return float(min(maximum, base * rng.uniform(1 - JITTER, 1 + JITTER)))


def too_old(rows: Sequence[OutboxRow], now: float, max_age: float) -> list[OutboxRow]:
    """Rows due for longer than ``max_age``. Age counts from when a row became due, not when
    it was queued: a row held through a weekend of quiet hours has not been failing all that
    time."""
    return [r for r in rows if now - r.due_since > max_age]


def next_attempt(
    row: OutboxRow, now: float, dispatch: DispatchSettings, rng: random.Random
) -> float | None:
    """When to try ``row`` again after a failed attempt; None when it has had its last
    chance (its age reached ``max_age``). The last try comes at the age limit, not past it."""
    if now - row.due_since >= dispatch.max_age:
        return None
    delay = retry_delay(row.attempts + 1, dispatch.retry_initial, dispatch.retry_max, rng)
    return min(now + delay, row.due_since + dispatch.max_age)


def fallback_report(
    config: Config, channel: str, rows: Sequence[OutboxRow], reason: str, now: float
) -> list[Notification]:
    """The notifications (one per URL of the fallback channel) that tell a person ``rows``
    for ``channel`` were given up on; none when there is no other channel to tell."""
    fallback = config.dispatch.fallback_channel
    settings = config.channels.get(fallback) if fallback else None
    if fallback is None or settings is None or fallback == channel:
        return []
    title, body = undelivered_notice(channel, rows, reason)
    return rows_for(
        fallback,
        settings,
        title=title,
        body=body,
        alert_ids=[f"expired:{r.key}" for r in rows],
        created=now,
        severity="critical",  # an alert was lost: the loudest there is
    )
