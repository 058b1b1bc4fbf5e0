"""What the heartbeat means by healthy, read from the stages' own statistics (nothing here
changes a stage, or waits on one beyond a read of the outbox):

- every enabled account is connected, or inside its reconnect budget (``reconnect_budget``):
  down for no longer than one connection attempt after the longest backoff. An account is
  timed from the first health check that saw it down (checks run every few seconds), so a
  flap shorter than that is not noticed here: its ``stream.*`` alerts tell of it;
- the pipeline moves end to end: a probe (engine/probe) sent on the engine's input comes back
  from delivery's workers within ``pipeline_timeout`` (``PipelineCheck``), so a wedged engine,
  dispatcher or send is unhealthy, naming the stage the probe is stuck behind;
- no notification has waited undelivered longer than ``channel_failing_after``: a channel
  that keeps failing, or a delivery that is stuck. Quiet hours do not count (a row is due from
  the end of the hours it was held for); a ``rate_limit`` holds rows for up to its period, so
  the setting should be longer than that, and than ``retry_max``;
- the shared database (``[daemon] database``) answers: while it is away, alerts wait in the
  spool (store/spool.py) and delivery waits for it, so alertd is degraded, and says since
  when and how many alerts are spooled (the outbox is not read then: it is in the database).
  So it does from the first call that found it not answering, within ``database_retry``.

A check is a ``Health``: an async callable returning a ``Verdict``, so the heartbeat can be
tested with any, and the daemon composes its own (``DaemonHealth``).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Protocol

import attrs
import trio

from alertd import clock
from alertd.config.model import AccountSettings
from alertd.engine.probe import PipelineProbe, Workers
from alertd.events import Event
from alertd.messages.formats import duration
from alertd.notify.delivery import Delivery
from alertd.store.outbox import Outbox
from alertd.store.spool import OutageStatistics, outage_of


@attrs.frozen
class Verdict:
    """Whether alertd is healthy, and why not (when healthy: a short status line)."""

    healthy: bool
    reason: str


Health = Callable[[], Awaitable[Verdict]]

PROBE_GLANCE = 0.5  # seconds a check waits for its probe (it is back in well under 1 ms)


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
    # The pipeline probe (PipelineCheck): its unhealthy verdict joins the others.
    probe: Health | None = None
    _watch: AccountsWatch = attrs.field(factory=AccountsWatch)

    async def __call__(self) -> Verdict:
        accounts = self.accounts()
        problems, connected = self._watch.problems(
            accounts, self.sources.statistics().accounts, trio.current_time()
        )
        outage = outage_of(self.outbox.db)
        if outage is not None and (outage.away_since or outage.unanswered_since) is not None:
            problems.append(database_problem(outage))
            pending = 0  # unknown (in the database): the verdict is unhealthy anyway
        else:
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
        draining = "" if outage is None or not outage.spool.alerts else (
            f", {outage.spool.alerts} alerts spooled (the database is back: draining)"
        )  # fmt: skip
        return Verdict(
            True,
            f"{connected}/{enabled} {noun} connected, {pending} notifications pending{draining}",
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


def database_problem(outage: OutageStatistics) -> str:
    """What an unhealthy verdict says of a shared database that is away."""
    since = time.strftime(
        "%H:%M:%S", time.gmtime(outage.away_since or outage.unanswered_since or 0.0)
    )
    spool = outage.spool
    text = f"database unreachable since {since} UTC, {spool.alerts} alerts spooled"
    if spool.full:
        text += f" (the spool is full at {spool.capacity}: dispatch waits, streams may gap)"
    return text


@attrs.frozen(kw_only=True)
class ProbeStatistics:
    sent: int  # probes sent on the engine's input
    stage: str | None  # where the last one is: "engine", "dispatch", "delivery" or "back"


@attrs.define(eq=False)
class PipelineCheck:
    """The pipeline probe's ``Health`` (engine/probe): each check sends a probe on ``events``
    (the engine's input), unless the last one is still out, and glances for it to come back.
    A probe out for longer than ``timeout`` is unhealthy, naming the stage it is stuck behind;
    when it comes back, the next check is healthy again. Sending never blocks: an input too
    full to take one probe is a stuck engine too."""

    events: trio.MemorySendChannel[Event]
    workers: Workers
    timeout: float
    _out: PipelineProbe | None = None
    _sent: int = 0
    _full_since: float | None = None

    def statistics(self) -> ProbeStatistics:
        return ProbeStatistics(
            sent=self._sent, stage=None if self._out is None else self._out.stage
        )

    async def __call__(self) -> Verdict:
        now = trio.current_time()
        probe = self._out
        if probe is None or probe.back.is_set():
            probe = PipelineProbe(number=self._sent + 1, sent=now, workers=self.workers)
            try:
                self.events.send_nowait(probe.event())
            except trio.WouldBlock:
                since = self._full_since = self._full_since or now
                if now - since <= self.timeout:
                    return Verdict(True, "")
                return Verdict(
                    False,
                    f"pipeline stuck behind the engine: its input has been full for "
                    f"{duration(now - since)}",
                )
            except (trio.ClosedResourceError, trio.BrokenResourceError):
                return Verdict(True, "")  # stopping: intake is closed, the pipeline drains
            self._full_since = None
            self._sent += 1
            self._out = probe
        with trio.move_on_after(PROBE_GLANCE):
            await probe.back.wait()
        out_for = trio.current_time() - probe.sent
        if probe.back.is_set() or out_for <= self.timeout:
            return Verdict(True, "")
        return Verdict(
            False,
            f"pipeline stuck: a probe sent {duration(out_for)} ago is {probe.where()}",
        )
