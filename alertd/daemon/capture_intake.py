"""The daemon's intake for ``alertd replay``: a capture's records instead of websockets.

Each record is fed at its own time (the trio clock is the capture's clock, see
``virtual_clock``) through the account's stream health machine, the one the live session
drives (``sources.health.StreamHealth.replay``): so decoding, the stream filter, login
replies, connected / disconnected / gap / stale / error facts are decided by the same code as
in ``alertd run``. Its deadlines (a stream going stale, a gap's snapshot wait) are ticked at
their own time between records. After the last record ``on_end`` is called (the replay stops
the daemon, which then drains as on SIGTERM).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence

import attrs
import trio

from alertd.config.model import AccountSettings
from alertd.events import Event, utc_from_timestamp
from alertd.sources.capture import CaptureRecord
from alertd.sources.health import StreamHealth
from alertd.sources.outputs import Emit, Output
from alertd.sources.session import AccountStatistics
from alertd.sources.supervisor import SourcesStatistics

log = logging.getLogger(__name__)


@attrs.define(eq=False)
class CaptureIntake:
    """Feeds ``records`` (in file order; each for an enabled account of ``accounts``, which
    the caller has checked) to ``send``; ``on_event`` sees each event as it is sent."""

    accounts: Sequence[AccountSettings]
    records: Iterable[CaptureRecord]
    send: trio.MemorySendChannel[Event]
    on_end: Callable[[], None]
    on_event: Callable[[Event], None] | None = None
    _health: dict[str, StreamHealth] = attrs.field(factory=dict)

    def __attrs_post_init__(self) -> None:
        for settings in self.accounts:
            if settings.enabled:
                self._health[settings.name] = StreamHealth.for_account(settings)

    def statistics(self) -> SourcesStatistics:
        return SourcesStatistics(
            accounts={
                name: AccountStatistics(
                    **attrs.asdict(health.statistics(), recurse=False),
                    overflow_dropped=0,
                    conflated=0,
                    queued=0,
                )
                for name, health in self._health.items()
            }
        )

    async def update(self, accounts: Sequence[AccountSettings]) -> None:
        """A capture is replayed with the config it started with."""

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        last = trio.current_time()
        for recorded in self.records:
            health = self._health.get(recorded.account)
            if health is None:  # a disabled account: the daemon would not read it
                continue
            # The capture's clock may step back a little (records written by several
            # tasks); the replay's never does.
            record = attrs.evolve(recorded, ts=last) if recorded.ts < last else recorded
            await self._tick_until(record.ts)
            await trio.sleep_until(record.ts)
            last = record.ts
            await self._carry_out(health.replay(record))
        await self._tick_until(last, inclusive=True)
        self.on_end()
        await trio.sleep_forever()

    async def _tick_until(self, ts: float, *, inclusive: bool = False) -> None:
        """Tick every account's health at each of its deadlines before ``ts`` (or at it), in
        time order."""
        while True:
            due = [
                (at, name)
                for name, health in self._health.items()
                if (at := health.next_wakeup()) is not None
                and (at < ts or (inclusive and at == ts))
            ]
            if not due:
                return
            at, name = min(due)
            await trio.sleep_until(at)
            health = self._health[name]
            await self._carry_out(health.tick(now=at, wall=utc_from_timestamp(at)))
            if health.next_wakeup() == at:  # a machine that wants this moment again
                return

    async def _carry_out(self, outputs: Iterable[Output]) -> None:
        for out in outputs:
            if isinstance(out, Emit):
                if self.on_event is not None:
                    self.on_event(out.event)
                await self.send.send(out.event)
            # Log lines are the live session's; replay's output is its transcript. Capture
            # facts (Record), wake-ups and login verdicts have no one to act on them here.
