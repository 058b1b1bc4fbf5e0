"""The one place where what happened to rows is recorded: delivered, put back for a retry,
given up on (expired), or muted before sending. Each outcome is marked in the outbox, counted
(the statistics and the metrics observer) and logged, in that order, here and nowhere else.

A send's result becomes an outcome through ``record``: accepted -> delivered; refused for
good -> expired; refused for now -> a retry with backoff, or expired when that was the last
chance (``expiry``). Expired rows are reported to the fallback channel.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Sequence

import attrs
import trio

from alertd import clock
from alertd.config.model import Config
from alertd.messages.lateness import late_words
from alertd.notify.expiry import fallback_report, next_attempt
from alertd.notify.notifier import SendResult
from alertd.notify.observer import DeliveryObserver
from alertd.store.alert_states import AlertState
from alertd.store.handoff import Target
from alertd.store.notifications import Finished, OutboxRow
from alertd.store.outbox import Outbox

log = logging.getLogger(__name__)

# A send that did not start: another replica claimed its row since this one's claim ran out
# (store/claims). Nothing of it is recorded here: the row is that replica's now.
FENCED = SendResult(ok=False, recoverable=True, detail="another replica holds the row now")


@attrs.define
class Tally:
    """What was recorded since start (``Delivery.statistics`` shows it)."""

    delivered: int = 0  # rows the service accepted
    digests: int = 0  # digest messages among the accepted sends
    failed: int = 0  # sends the service refused or did not answer in time
    retries: int = 0  # rows put back for a later attempt
    expired: int = 0  # rows given up on
    muted: int = 0  # rows finished unsent: every alert silenced or inhibited since queued


@attrs.frozen(kw_only=True)
class MutedRow:
    row: OutboxRow
    how: Finished  # "silenced" or "inhibited"
    reason: str  # in words, for the row (``silenced by silence 3f2a``)
    sources: str  # the silence ids or rule names, for the log line
    alert_states: tuple[tuple[str, AlertState], ...]


@attrs.define
class Outcomes:
    outbox: Outbox
    wall: clock.Wall
    rng: random.Random
    observer: DeliveryObserver
    tally: Tally = attrs.field(factory=Tally)
    _changed: trio.Event = attrs.field(factory=trio.Event, init=False)

    def change_event(self) -> trio.Event:
        """Set when the next outcome is recorded (take it before looking at the outbox)."""
        if self._changed.is_set():
            self._changed = trio.Event()
        return self._changed

    async def record(
        self,
        config: Config,
        target: Target,
        rows: Sequence[OutboxRow],
        result: SendResult,
        *,
        digest: bool = False,
        handing: Sequence[OutboxRow] = (),
    ) -> None:
        """What one send means for the rows it carried (a row, or a digest's rows). Rows
        accepted are recorded delivered together with ``handing`` (the next rows to send)
        marked as in the service's hands: one write between two sends."""
        if not rows or result is FENCED:
            return
        if result.ok:
            late_after = config.dispatch.late_after
            await self._delivered(target, rows, digest=digest, handing=handing, late=late_after)
        else:
            await self._failed(config, target, rows, result)
        self._changed.set()

    async def _delivered(
        self,
        target: Target,
        rows: Sequence[OutboxRow],
        *,
        digest: bool,
        handing: Sequence[OutboxRow],
        late: float,
    ) -> None:
        channel, index = target
        now = self.wall()
        await self.outbox.mark_delivered([r.key for r in rows], now, handing=handing)
        self.tally.delivered += len(rows)
        for row in rows:
            self.observer.delivered(channel, max(0.0, now - row.due_since))
        self.tally.digests += digest
        if not log.isEnabledFor(logging.INFO):
            return
        who = await self.who(rows)
        if digest:
            rules, accounts = (",".join(sorted({w[i] for w in who.values()})) for i in (0, 1))
            log.info(
                "delivery.digest rule=%s account=%s channel=%s url=%d rows=%d",
                *(rules or "-", accounts or "-", channel, index, len(rows)),
            )
            return
        for row in rows:
            log.info(
                "delivery.sent rule=%s account=%s channel=%s url=%d attempts=%d%s",
                *who[row.key],
                *(channel, index, row.attempts + 1),
                late_words(row.created, now, late),
            )

    async def _failed(
        self, config: Config, target: Target, rows: Sequence[OutboxRow], result: SendResult
    ) -> None:
        channel, index = target
        self.tally.failed += 1
        self.observer.failed(channel)
        if not result.recoverable:
            await self.expire(config, target, rows, f"not recoverable: {result.detail}")
            return
        now = self.wall()
        later = [(row, next_attempt(row, now, config.dispatch, self.rng)) for row in rows]
        last_chance = [row for row, at in later if at is None]
        if last_chance:
            max_age = config.dispatch.max_age
            await self.expire(
                config, target, last_chance, f"undelivered after {max_age:g}s: {result.detail}"
            )
        retries = [(row, at) for row, at in later if at is not None]
        if not retries:
            return
        await self.outbox.mark_retry(
            [(row.key, at) for row, at in retries], error=result.detail, now=now
        )
        self.tally.retries += len(retries)
        who = await self.who([row for row, _ in retries])
        for row, at in retries:
            log.warning(
                "delivery.retry rule=%s account=%s channel=%s url=%d attempts=%d in=%.1f error=%s",
                *who[row.key],
                *(channel, index, row.attempts + 1, at - now, result.detail),
            )

    async def expire(
        self, config: Config, target: Target, rows: Sequence[OutboxRow], reason: str
    ) -> None:
        """Give up on ``rows`` and tell the fallback channel, if there is one."""
        channel, _ = target
        now = self.wall()
        await self.outbox.mark_expired([r.key for r in rows], error=reason, now=now)
        self.tally.expired += len(rows)
        who = await self.who(rows)
        for row in rows:
            log.error(
                "delivery.expired rule=%s account=%s channel=%s url=%d attempts=%d reason=%s%s",
                *who[row.key],
                *(channel, row.url_index, row.attempts, reason),
                f" last_error={row.last_error}" if row.last_error not in reason else "",
            )
        report = fallback_report(config, channel, rows, reason, now)
        if report:
            await self.outbox.enqueue(report)
        self._changed.set()

    async def muted(self, target: Target, rows: Sequence[MutedRow]) -> None:
        """Finish rows whose every alert was muted since they were queued."""
        if not rows:
            return
        channel, index = target
        await self.outbox.mark_muted(
            [(m.row.key, m.how, m.reason) for m in rows],
            [state for m in rows for state in m.alert_states],
            self.wall(),
        )
        self.tally.muted += len(rows)
        self._changed.set()
        who = await self.who([m.row for m in rows])
        for m in rows:
            log.info(
                "delivery.%s rule=%s account=%s channel=%s url=%d alerts=%d by=%s",
                m.how,
                *who[m.row.key],
                *(channel, index, len(m.row.alert_ids), m.sources),
            )

    async def who(self, rows: Sequence[OutboxRow]) -> dict[str, tuple[str, str]]:
        """Each row's rules and accounts (comma-separated, ``-`` for none: a notice of
        alertd's own), for its log line: the outbox keeps them with the alerts."""
        known = await self.outbox.origins(i for row in rows for i in row.alert_ids)
        out = {}
        for row in rows:
            origins = [known[i] for i in row.alert_ids if i in known]
            rules = sorted({rule for rule, _ in origins}) or ["-"]
            accounts = sorted({account for _, account in origins}) or ["-"]
            out[row.key] = (",".join(rules), ",".join(accounts))
        return out
