"""Muting: what keeps a notification from a person although its alert fired. Silences
(``silences``: a person said so) and inhibition (``inhibit``: while an account's stream is
down, its stale and absence alerts are held back for the one "down" alert) answer one
question through one interface, asked twice: when dispatch queues an alert, and again by
delivery just before it sends (a silence added while a row waited still counts).

Times: ``wall`` is Unix seconds (silences are stored as wall time and survive restarts);
``now`` is the trio clock (inhibition follows the stream alerts' timers).
"""

from __future__ import annotations

from typing import Literal, Protocol

import attrs

from alertd.events import Alert


@attrs.frozen(kw_only=True)
class Muted:
    """Why an alert is not sent: ``by`` names the silence(s) or the inhibiting rule, in words
    that go into logs and the outbox's reason (``silence 3f2a`` / ``rule stream-down``)."""

    how: Literal["silenced", "inhibited"]
    by: str


class Muting(Protocol):
    """One view of everything that mutes; shared by dispatch and delivery."""

    async def refresh(self, wall: float) -> None:
        """Pick up silences another process added or removed; cheap to call often."""
        ...

    def may_mute(self, wall: float, now: float) -> bool:
        """False when nothing could mute any alert now (the common case, checked first)."""
        ...

    def muted(self, alert: Alert, *, wall: float, now: float) -> Muted | None:
        """Why ``alert`` is muted at this moment, or None when it may be sent."""
        ...
