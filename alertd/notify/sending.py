"""Handing messages to the service: a message split into the parts the service accepts
(``messages.split``), each part waiting for a free slot of the channel's rate limit, and the
parts already accepted remembered (``parts_done``) so a retry resumes after them.

What is in a service's hands is written down before it is sent (``Outbox.mark_handed``) and
its outcome as soon as the service answered (``Outcomes.record``, the one place it is
written), so a crash at any moment resends at most what was in the service's hands at that
moment, and that copy says it may be a repeat. Between two rows of a backlog, the first
one's record and the second one's hand-off are one write.

Each accepted call's duration goes into the URL's send time (``backlog.SendTimes``), which
tells delivery when the URL is behind."""

from __future__ import annotations

from collections.abc import Sequence

import attrs
import trio

from alertd import clock
from alertd.config.model import ChannelSettings, Config
from alertd.events import Alert
from alertd.messages.lateness import with_marker
from alertd.messages.split import Part, split_message
from alertd.notify.backlog import SendTimes
from alertd.notify.notifier import Notifier, Outgoing, SendResult
from alertd.notify.outcomes import FENCED, Outcomes
from alertd.notify.ratelimit import RateLimiter
from alertd.store.handoff import Target
from alertd.store.notifications import OutboxRow
from alertd.store.outbox import Outbox


@attrs.define
class Sender:
    notifier: Notifier
    outbox: Outbox
    outcomes: Outcomes
    wall: clock.Wall
    in_flight: int = 0  # messages in a service's hands right now
    times: SendTimes = attrs.field(factory=SendTimes)  # how fast each URL takes a message

    def length_limit(self, settings: ChannelSettings, index: int) -> int | None:
        """The most characters one message to URL ``index`` may carry (None: no limit)."""
        return settings.max_length or self.notifier.limits(settings.urls[index]).body

    def parts(self, settings: ChannelSettings, index: int, title: str, body: str) -> list[Part]:
        """``title`` and ``body`` as the parts URL ``index`` of the channel will take."""
        limits = self.notifier.limits(settings.urls[index])
        return split_message(
            title,
            body,
            self.length_limit(settings, index),
            title_in_body=limits.title_in_body,
            html=limits.html,
        )

    async def send(
        self,
        settings: ChannelSettings,
        index: int,
        title: str,
        body: str,
        rate: RateLimiter | None,
        *,
        level: str,
        alerts: tuple[Alert, ...] = (),
        skip: int = 0,
        row_key: str | None = None,
        carrying: Sequence[OutboxRow] = (),
    ) -> SendResult:
        """Send a message of ``level`` (``messages.level``), in the channel's body format,
        split as the service needs, from part ``skip`` on; stops at the first part that
        fails. With ``row_key``, each accepted part but the last is written down (the last
        one's outcome is the row's). A send cancelled in the service's hands makes the rows
        it is ``carrying`` possible repeats."""
        if carrying and not await self.outbox.still_held(carrying):
            return FENCED  # another replica's row now: this one does not send it
        url = settings.urls[index]
        parts = self.parts(settings, index, title, body)
        result = SendResult(ok=True)
        for number in range(skip, len(parts)):
            part = parts[number]
            if rate is not None:
                # Every part is a message to the service: each waits for a free slot.
                await trio.sleep_until(rate.next_free(trio.current_time()))
            self.in_flight += 1
            try:
                message = Outgoing.at_level(
                    part.title, part.body, level, body_format=settings.format, alerts=alerts
                )
                started = trio.current_time()
                result = await self.notifier.send(url, message, service_timeout=settings.timeout)
                if result.ok:
                    self.times.record(url, trio.current_time() - started)
            except trio.Cancelled:
                with trio.CancelScope(shield=True):  # it may arrive all the same
                    await self.outbox.mark_cut(carrying)
                raise
            finally:
                self.in_flight -= 1
            if rate is not None:
                rate.record(trio.current_time())
            if not result.ok:
                return result
            if row_key is not None and number + 1 < len(parts):
                with trio.CancelScope(shield=True):  # accepted: not to be sent again
                    await self.outbox.mark_parts_done(row_key, number + 1, self.wall())
        return result

    async def alerts_of(
        self, settings: ChannelSettings, index: int, rows: Sequence[OutboxRow]
    ) -> tuple[Alert, ...]:
        """The alerts ``rows`` carry, in order, for a service that takes them (empty for
        the others: only such a service costs this read)."""
        ids = [i for row in rows for i in row.alert_ids]
        if not ids or not self.notifier.limits(settings.urls[index]).alerts:
            return ()
        stored = await self.outbox.alerts(ids)
        return tuple(stored[i] for i in ids if i in stored)

    async def send_in_order(
        self,
        config: Config,
        target: Target,
        settings: ChannelSettings,
        rows: list[OutboxRow],
        rate: RateLimiter | None = None,
    ) -> bool:
        """Send ``rows`` one after another (each resuming after its parts already accepted),
        each recorded as soon as the service answered; stops at the first failure. True when
        all were delivered.

        On cancellation the row in the service's hands stays pending (sent again after a
        restart, marked as a possible repeat); every row accepted before it is recorded."""
        await self.outbox.mark_handed(rows[:1])
        for i, row in enumerate(rows):
            following = rows[i + 1 : i + 2]
            result = await self._send_and_record(
                config, target, settings, row, rate=rate, following=following
            )
            if not result.ok:
                return False
        return True

    async def _send_and_record(
        self,
        config: Config,
        target: Target,
        settings: ChannelSettings,
        row: OutboxRow,
        *,
        rate: RateLimiter | None,
        following: list[OutboxRow],
    ) -> SendResult:
        """Send ``row`` (its hand-off written down already) and record the outcome; when it
        was accepted, ``following`` is marked in the service's hands in the same write."""
        alerts = await self.alerts_of(settings, target[1], [row])
        late = (row.created, self.wall(), config.dispatch.late_after, config.daemon.timezone)
        result = await self.send(
            settings,
            target[1],
            row.title,
            with_marker(row.body, *late) if not row.parts_done else row.body,
            rate,
            level=row.severity,
            alerts=alerts,
            skip=row.parts_done,
            row_key=row.key,
            carrying=[row],
        )
        with trio.CancelScope(shield=True):  # what the service answered is written down
            await self.outcomes.record(
                config, target, [row], result, handing=following if result.ok else []
            )
        return result
