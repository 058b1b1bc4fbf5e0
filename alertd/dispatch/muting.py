"""Muting: what keeps a notification from a person although its alert fired. Silences
(``silences``: a person said so) and inhibition (``inhibit``: while an account's stream is
down, its stale and absence alerts are held back for the one "down" alert) answer one
question through one interface, asked twice: when dispatch queues an alert, and again by
delivery just before it sends (a silence added while a row waited still counts).

Times: ``wall`` is Unix seconds (silences are stored as wall time and survive restarts);
``now`` is the trio clock (inhibition follows the stream alerts' timers).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal, Protocol

import attrs
import trio

from alertd.config.model import Config
from alertd.dispatch.inhibit import Inhibitor, InhibitorState
from alertd.dispatch.silences import Silences
from alertd.events import Alert


@attrs.frozen(kw_only=True)
class Muted:
    """Why an alert is not sent: ``by`` names the silence(s) or the inhibiting rule, in words
    that go into logs and the outbox's reason (``silence 3f2a`` / ``rule stream-down``)."""

    how: Literal["silenced", "inhibited"]
    by: str
    source: str = ""  # the silence id or the rule name alone, for key=value log fields


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


class Muter:
    """The daemon's ``Muting``: the silences in the state database (``silences``) and the
    inhibitions the alerts seen so far imply. One is built where the stages are wired and
    given to dispatch, which feeds it every alert it accepts (``observe``), and to delivery,
    which only asks. ``update_config`` on reload (the dispatcher forwards its own)."""

    def __init__(self, config: Config, silences: Silences) -> None:
        self.silences = silences
        self._inhibitor = Inhibitor(config)

    def update_config(self, config: Config) -> None:
        """Use ``config``'s inhibition settings from now on; what is down carries over."""
        self._inhibitor.config = config

    async def refresh(self, wall: float) -> None:
        await self.silences.refresh(wall)

    async def keep_fresh(
        self,
        wall: Callable[[], float],
        *,
        task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Keep the silences fresh in a task of their own (``Silences.keep_fresh``), so that
        ``refresh`` costs an alert on its way out nothing; the daemon runs it with its
        housekeeping (not replay, whose virtual clock would wake it every second)."""
        await self.silences.keep_fresh(wall, task_status=task_status)

    def may_mute(self, wall: float, now: float) -> bool:
        return self.silences.any_active(wall) or self._inhibitor.any_active()

    def muted(self, alert: Alert, *, wall: float, now: float) -> Muted | None:
        silence = self.silences.match(alert, wall)
        if silence is not None:
            return Muted(how="silenced", by=f"silence {silence.id}", source=silence.id)
        rule = self._inhibitor.inhibited_by(alert, now)
        if rule is not None:
            return Muted(how="inhibited", by=f"rule {rule}", source=rule)
        return None

    # -- for dispatch --------------------------------------------------------------------------

    def observe(self, alert: Alert, now: float) -> None:
        """Note what ``alert`` says about streams down and source rules firing (every alert
        dispatch accepts, muted ones too)."""
        self._inhibitor.observe(alert, now)

    def snapshot(self) -> InhibitorState:
        """What ``observe`` and ``muted`` may change, for ``restore`` (a batch refused)."""
        return self._inhibitor.snapshot()

    def restore(self, saved: InhibitorState) -> None:
        self._inhibitor.restore(saved)
