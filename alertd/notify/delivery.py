"""The delivery stage: send what is due in the outbox, through a ``Notifier``, one worker per
(channel, URL). Its parts, each one job:

- ``worker``: the loop of one URL's worker (rows from the hand-off, or from the table);
- this module: wiring, the supervisor that starts a worker for every URL with pending rows,
  the drain on stop, pruning, and what one pass over due rows does: expire rows due for
  longer than ``dispatch.max_age``; ask muting again (``recheck``); then send the rows in
  order (``sending``), or, under a ``rate_limit``, as the limit allows (``digests``); a URL
  that is behind (``backlog``: what is due would take longer than ``[dispatch] catch_up`` to
  send one message each) gets it as digests until it keeps up again;
- ``outcomes``: the one place that records delivered, retried, expired and muted rows;
- ``expiry``: backoff (``retry_initial`` doubling up to ``retry_max``, with jitter), the age
  limit, and the fallback channel's report; a failure that is not recoverable (bad URL,
  rejected token) expires the row at once.

Times stored in the outbox are Unix seconds from ``wall`` (default: ``clock.wall``, which
follows the trio clock); rate-limit windows use the trio clock directly.
"""

from __future__ import annotations

import logging
import random

import attrs
import trio

from alertd import clock
from alertd.config.model import Config
from alertd.dispatch.muting import Muting
from alertd.messages.notices import marked_if_repeat
from alertd.notify.backlog import Plan, plan
from alertd.notify.digests import Digests
from alertd.notify.expiry import too_old
from alertd.notify.notifier import Notifier
from alertd.notify.observer import DeliveryObserver, NoObserver
from alertd.notify.outcomes import Outcomes
from alertd.notify.recheck import Recheck
from alertd.notify.sending import Sender
from alertd.notify.worker import ProbeDesk, serve_url
from alertd.store.handoff import Target
from alertd.store.notifications import OutboxRow
from alertd.store.outbox import Outbox

log = logging.getLogger(__name__)

SUPERVISE_INTERVAL = 30.0  # seconds: safety net re-scan for URLs with pending rows
PRUNE_INTERVAL = 3600.0  # seconds between deletions of old finished rows
KEEP_FINISHED = 7 * 86400.0  # seconds finished rows stay for inspection (at least max_age)
DRAIN_POLL = 0.05  # seconds between checks while drain() waits on a running run()


@attrs.frozen(kw_only=True)
class DeliveryStatistics:
    workers: int  # URLs served by a worker
    in_flight: int  # messages in a service's hands right now
    delivered: int  # rows the services accepted, since start
    digests: int  # digest messages among them (each carries several rows)
    catch_ups: int  # passes sent as digests because the URL was behind (not the rate limit)
    failed: int  # sends refused or unanswered in time
    retries: int  # rows put back for a later attempt
    expired: int  # rows given up on
    muted: int  # rows finished unsent: silenced or inhibited after they were queued


class Delivery:
    """Delivers the outbox through ``notifier``, taking the rows the outbox hands over
    (``outbox.handoff``). ``muting`` (the daemon's ``Muter``, shared with dispatch) is asked
    again just before each send (None: nothing is muted)."""

    def __init__(
        self,
        config: Config,
        outbox: Outbox,
        notifier: Notifier,
        *,
        muting: Muting | None = None,
        wall: clock.Wall = clock.wall,
        rng: random.Random | None = None,
        metrics: DeliveryObserver | None = None,
    ) -> None:
        self._config = config
        self._outbox = outbox
        self._wall = wall
        self._outcomes = Outcomes(
            outbox=outbox, wall=wall, rng=rng or random.Random(), observer=metrics or NoObserver()
        )
        self._sender = Sender(notifier=notifier, outbox=outbox, outcomes=self._outcomes, wall=wall)
        self._digests = Digests(self._sender)
        self._recheck = Recheck(muting=muting, outbox=outbox, outcomes=self._outcomes)
        self._workers: set[Target] = set()
        self._running = False
        self.probes = ProbeDesk()  # where the heartbeat's pipeline probe meets the workers

    def update_config(self, config: Config) -> None:
        """Use ``config`` from the next pass on (reload)."""
        self._config = config

    def statistics(self) -> DeliveryStatistics:
        # The counts are the tally's, field for field (Tally names them once).
        counts = attrs.asdict(self._outcomes.tally)
        return DeliveryStatistics(
            workers=len(self._workers),
            in_flight=self._sender.in_flight,
            catch_ups=self._digests.catch_ups,
            **counts,
        )

    # -- tasks --------------------------------------------------------------------------------

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Deliver forever. Resumes what an earlier process left pending. On cancellation a
        send in flight is abandoned undelivered (its row stays pending)."""
        handoff = self._outbox.handoff
        self._running = True
        try:
            async with trio.open_nursery() as nursery:
                task_status.started()
                next_prune = next_scan = trio.current_time()
                while True:
                    arrival = handoff.unserved_arrival()
                    # URLs queued to are named by the hand-off; the table is scanned only at
                    # start and then every SUPERVISE_INTERVAL, as a safety net (a read on
                    # every change was one more round trip per alert).
                    targets = handoff.unserved()
                    if trio.current_time() >= next_scan:
                        targets |= await self._outbox.pending_targets()
                        next_scan = trio.current_time() + SUPERVISE_INTERVAL
                    for target in targets - self._workers:
                        self._workers.add(target)
                        nursery.start_soon(self._serve, target, None)
                    if trio.current_time() >= next_prune:
                        await self._prune()
                        next_prune = trio.current_time() + PRUNE_INTERVAL
                    with trio.move_on_at(next_scan):
                        await arrival.wait()
        finally:
            self._running = False
            self._workers.clear()

    async def drain(self, deadline: float) -> int:
        """Deliver what is pending until nothing is due before ``deadline`` (a
        ``trio.current_time()`` value) or the deadline passes, for SIGTERM. Works whether or
        not ``run`` is still going. Returns how many rows are left pending."""
        with trio.move_on_at(deadline):
            if self._running:
                # run()'s workers do the sending; watch until nothing is due in time.
                while True:
                    recorded = self._outcomes.change_event()
                    if not await self._due_before(deadline):
                        break
                    with trio.move_on_after(DRAIN_POLL):
                        await recorded.wait()
            else:
                async with trio.open_nursery() as nursery:
                    for target in await self._outbox.pending_targets():
                        nursery.start_soon(self._serve, target, deadline)
        with trio.CancelScope(shield=True):
            left = await self._outbox.pending_count()
        if left:
            log.warning("delivery.drain_incomplete pending=%d", left)
        return left

    async def _due_before(self, deadline: float) -> bool:
        horizon = self._wall() + (deadline - trio.current_time())
        for channel, index in await self._outbox.pending_targets():
            due = await self._outbox.next_due(channel, index)
            if due is not None and due <= horizon:
                return True
        return False

    async def _serve(self, target: Target, until: float | None) -> None:
        await serve_url(
            target,
            outbox=self._outbox,
            handoff=self._outbox.handoff,
            handle=self._handle,
            immediate=self._immediate,
            wall=self._wall,
            until=until,
            probes=self.probes,
        )

    def _immediate(self, target: Target) -> bool:
        channel, index = target
        settings = self._config.channels.get(channel)
        return settings is not None and index < len(settings.urls) and not settings.rate_limit

    # -- one pass -----------------------------------------------------------------------------

    async def _handle(self, target: Target, rows: list[OutboxRow], now: float) -> bool:
        """Send (or expire, or finish as muted) ``rows``, due rows of one URL, oldest first.
        True when every one of them is finished, False when some are left pending."""
        config = self._config  # one config for the whole pass, even across a reload
        channel, index = target
        settings = config.channels.get(channel)
        if settings is None or index >= len(settings.urls):
            reason = f"channel {channel} URL #{index} is not configured"
            await self._outcomes.expire(config, target, rows, reason)
            return True
        max_age = config.dispatch.max_age
        old = too_old(rows, now, max_age)
        if old:
            await self._outcomes.expire(config, target, old, f"undelivered after {max_age:g}s")
            gone = {r.key for r in old}
            rows = [r for r in rows if r.key not in gone]
            if not rows:
                return True
        rows = await self._recheck.unmuted(config, target, rows, wall=now, now=trio.current_time())
        if not rows:
            return True
        rows = marked_if_repeat(rows, self._outbox.possible_repeat)  # a send was cut off
        rate = self._digests.rate(target, settings)
        if rate is None:
            # No limit: the whole batch goes out, in order, before the next read (one row a
            # read made a backlog cost O(backlog) a row), unless that would take too long.
            per_send = self._sender.times.estimate(settings.urls[index])
            how = plan(len(rows), per_send, config.dispatch.catch_up)
            if how is Plan.DIGESTS:
                return await self._digests.catch_up(config, target, settings, rows)
            if how is Plan.FIRST_ALONE:  # its time tells how the rest go; they are re-read
                await self._sender.send_in_order(config, target, settings, rows[:1])
                return False
            return await self._sender.send_in_order(config, target, settings, rows)
        await self._digests.send(config, target, settings, rows, rate)
        return False

    async def _prune(self) -> None:
        keep = max(KEEP_FINISHED, self._config.dispatch.max_age)
        removed = await self._outbox.prune(self._wall() - keep)
        if removed:
            log.info("delivery.pruned rows=%d", removed)
