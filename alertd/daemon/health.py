"""What the heartbeat means by healthy, read from the stages' own statistics (nothing here
changes a stage, or waits on one beyond a read of the outbox):

- every enabled account is connected, or inside its reconnect budget (``reconnect_budget``):
  down for no longer than one connection attempt after the longest backoff. An account is
  timed from the first health check that saw it down (checks run every few seconds), so a
  flap shorter than that is not noticed here: its ``stream.*`` alerts tell of it;
- no notification has waited undelivered longer than ``channel_failing_after``: a channel
  that keeps failing, or a delivery that is stuck. Quiet hours do not count (a row is due from
  the end of the hours it was held for); a ``rate_limit`` holds rows for up to its period, so
  the setting should be longer than that, and than ``retry_max``.

A check is a ``Health``: an async callable returning a ``Verdict``, so the heartbeat can be
tested with any, and the daemon composes its own (``DaemonHealth``).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Protocol

import attrs
import trio

from alertd import clock
from alertd.config.model import AccountSettings
from alertd.messages.formats import duration
from alertd.notify.delivery import Delivery
from alertd.store.outbox import Outbox


@attrs.frozen
class Verdict:
    """Whether alertd is healthy, and why not (when healthy: a short status line)."""

    healthy: bool
    reason: str


Health = Callable[[], Awaitable[Verdict]]


class AccountView(Protocol):
    """What the health check reads of an account's statistics (``AccountStatistics``)."""

    @property
    def connected(self) -> bool: ...


class SourcesSnapshot(Protocol):
    @property
    def accounts(self) -> Mapping[str, AccountView]: ...


class SourcesView(Protocol):
    """What the health check reads from the sources (``Sources``, or another intake)."""

    def statistics(self) -> SourcesSnapshot: ...


def reconnect_budget(account: AccountSettings) -> float:
    """How long ``account`` may be down and still count as reconnecting: one connection
    attempt (``connect_timeout``, plus ``login_timeout`` when a login frame is sent) after
    the longest backoff (``backoff_max``)."""
    budget = account.backoff_max + account.connect_timeout
    if account.auth.login_frame is not None:
        budget += account.auth.login_timeout
    return budget


@attrs.define(eq=False)
class AccountsWatch:
    """Since when each enabled account has been seen down (trio seconds); owned by the one
    task that asks for health."""

    _down_since: dict[str, float] = attrs.field(factory=dict)

    def problems(
        self,
        accounts: Sequence[AccountSettings],
        stats: Mapping[str, AccountView],
        now: float,
    ) -> tuple[list[str], int]:
        """What is wrong with ``accounts`` (enabled or not) at ``now``, and how many of the
        enabled ones are connected. An account not (yet) in ``stats`` counts as down."""
        enabled = [a for a in accounts if a.enabled]
        names = {a.name for a in enabled}
        for gone in set(self._down_since) - names:
            del self._down_since[gone]
        problems, connected = [], 0
        for account in enabled:
            s = stats.get(account.name)
            if s is not None and s.connected:
                connected += 1
                self._down_since.pop(account.name, None)
                continue
            down_for = now - self._down_since.setdefault(account.name, now)
            budget = reconnect_budget(account)
            if down_for > budget:
                problems.append(
                    f"account {account.name} disconnected for {duration(down_for)} "
                    f"(reconnect budget {duration(budget)}): alertd cannot see it"
                )
        return problems, connected


@attrs.define(eq=False)
class DaemonHealth:
    """The daemon's ``Health``: its accounts (the running config's, via ``accounts``, so a
    reload is followed) against the sources' statistics, and the outbox's oldest pending
    notification against ``channel_failing_after``. Unhealthy reasons are joined with "; "."""

    accounts: Callable[[], Sequence[AccountSettings]]
    sources: SourcesView
    outbox: Outbox
    delivery: Delivery
    channel_failing_after: float
    wall: clock.Wall = clock.wall
    # TODO(pipeline probe): issue 12 also asks that a probe go from the engine's input through
    # dispatch to the delivery worker, so that a wedged stage stops the pings. None of those
    # stages can carry a probe today, and building one means changing them (other people own
    # them now). When they can, pass the probe's check here: its unhealthy verdict joins the
    # others. Until then a wedged delivery shows as notifications waiting too long (above); a
    # wedged engine or dispatcher only once its queue backs up into the accounts' buffers (a
    # stream.gap of overflow) or when the event loop itself hangs (no ping at all).
    probe: Health | None = None
    _watch: AccountsWatch = attrs.field(factory=AccountsWatch)

    async def __call__(self) -> Verdict:
        accounts = self.accounts()
        problems, connected = self._watch.problems(
            accounts, self.sources.statistics().accounts, trio.current_time()
        )
        late, pending = await self._delivery_problems()
        problems += late
        if self.probe is not None:
            probed = await self.probe()
            if not probed.healthy:
                problems.append(probed.reason)
        if problems:
            return Verdict(False, "; ".join(problems))
        enabled = sum(1 for a in accounts if a.enabled)
        noun = "account" if enabled == 1 else "accounts"
        return Verdict(
            True, f"{connected}/{enabled} {noun} connected, {pending} notifications pending"
        )

    async def _delivery_problems(self) -> tuple[list[str], int]:
        """Whether a notification has waited longer than allowed, and how many wait."""
        stats = await self.outbox.statistics()
        oldest = stats.oldest_pending
        if oldest is None:
            return [], stats.pending
        waited = self.wall() - oldest
        if waited <= self.channel_failing_after:
            return [], stats.pending
        where = ", ".join(f"{c} {n}" for c, n in sorted(stats.pending_by_channel.items()))
        failed = self.delivery.statistics().failed
        return [
            f"delivery failing: a notification undelivered for {duration(waited)} "
            f"(pending: {where}; {failed} sends failed since start)"
        ], stats.pending
