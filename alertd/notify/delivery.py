"""The delivery task: send what is due in the outbox, retry, expire, rate-limit, digest.

One worker task per (channel, URL), so a hanging service delays only its own rows: neither
other channels nor event intake (which never waits on delivery). A worker takes the due rows
of its URL, oldest first, and:

- expires rows due for longer than ``dispatch.max_age`` (logged, and reported through
  ``dispatch.fallback_channel`` when set);
- with a ``rate_limit``, when more rows are due than the limit allows right now, sends them
  as digests instead of a flood: each digest message carries whole rows and fits the service
  in one message, no more messages go out than the limit allows now (the other rows wait for
  the next free slot), and each message's rows are marked delivered as soon as it is accepted,
  so a later failure never makes the user get them twice;
- with ``silences``, finishes rows whose alerts were all silenced since they were queued (held
  for quiet hours, or retrying), and sends a partly silenced row re-written without the
  silenced alerts, exactly as dispatch would have written it had the silence been there then;
- otherwise sends one row, split into parts when it is longer than the service accepts;
- on a recoverable failure retries with exponential backoff and jitter
  (``retry_initial`` doubling up to ``retry_max``); a failure that is not recoverable (bad
  URL, rejected token) expires the row at once.

Times stored in the outbox are Unix seconds from ``wall`` (default: ``clock.wall``, which
follows the trio clock); rate-limit windows use the trio clock directly.
"""

from __future__ import annotations

import logging
import random
import textwrap
from collections.abc import Sequence
from datetime import UTC, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import attrs
import trio

from alertd import clock
from alertd.config.model import ChannelSettings, Config
from alertd.dispatch.silences import Silences
from alertd.events import highest_severity
from alertd.messages.split import split_message
from alertd.messages.summary import summarize
from alertd.notify.notifier import Notifier, SendResult
from alertd.notify.observer import DeliveryObserver, NoObserver
from alertd.notify.ratelimit import RateLimiter
from alertd.store.outbox import Notification, Outbox, OutboxRow, notification_key

log = logging.getLogger(__name__)

DUE_BATCH = 1000  # rows read per pass for one URL; a bigger backlog goes out in more digests
MARK_BATCH = 50  # rows sent (no rate limit) before they are marked delivered in one write
SUPERVISE_INTERVAL = 30.0  # seconds: safety net re-scan for URLs with pending rows
PRUNE_INTERVAL = 3600.0  # seconds between deletions of old finished rows
KEEP_FINISHED = 7 * 86400.0  # seconds finished rows stay for inspection (at least max_age)
JITTER = 0.2  # retry delays vary by +-20% so many rows do not retry in lockstep
DRAIN_POLL = 0.05  # seconds between checks while drain() waits on a running run()

Target = tuple[str, int]  # (channel name, URL index)


def _zone(name: str) -> tzinfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return UTC


def retry_delay(attempts: int, initial: float, maximum: float, rng: random.Random) -> float:
    """Backoff after the ``attempts``-th failure (1-based): initial, 2x, 4x, ... up to maximum,
    each varied by +-JITTER."""
    base = min(maximum, initial * 2 ** max(0, attempts - 1))
    return float(min(maximum, base * rng.uniform(1 - JITTER, 1 + JITTER)))


def digest_text(
    channel: str,
    rows: Sequence[OutboxRow],
    max_items: int,
    *,
    of: int | None = None,
    number: tuple[int, int] = (1, 1),
) -> tuple[str, str]:
    """One message for a backlog: every row by title, the first ``max_items`` with bodies.
    ``of``: how many rows were due in all; ``number``: (this message, messages) of the pass."""
    count = str(len(rows)) if of is None or of == len(rows) else f"{len(rows)} of {of}"
    title = f"alertd digest: {count} notifications for {channel}"
    if number[1] > 1:
        title += f" ({number[0]}/{number[1]})"
    lines = [f"{count} notifications arrived faster than {channel}'s rate limit allows:"]
    for i, row in enumerate(rows):
        lines.append(f"\u2022 {row.title}")
        if i < max_items and row.body and row.body != row.title:
            lines.append(textwrap.indent(row.body, "  "))
    return title, "\n".join(lines)


class Delivery:
    """Delivers the outbox through ``notifier``. See the module docstring."""

    def __init__(
        self,
        config: Config,
        outbox: Outbox,
        notifier: Notifier,
        *,
        silences: Silences | None = None,
        wall: clock.Wall = clock.wall,
        rng: random.Random | None = None,
        metrics: DeliveryObserver | None = None,
    ) -> None:
        self._config = config
        self._silences = silences
        self._metrics: DeliveryObserver = metrics or NoObserver()
        self._outbox = outbox
        self._notifier = notifier
        self._wall = wall
        self._rng = rng or random.Random()
        self._workers: set[Target] = set()
        self._rates: dict[Target, tuple[str, RateLimiter]] = {}
        self._running = False

    def update_config(self, config: Config) -> None:
        """Use ``config`` from the next send on (reload)."""
        self._config = config

    # -- tasks --------------------------------------------------------------------------------

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Deliver forever. Resumes what an earlier process left pending. On cancellation a
        send in flight is abandoned undelivered (its row stays pending)."""
        self._running = True
        try:
            async with trio.open_nursery() as nursery:
                task_status.started()
                next_prune = next_scan = trio.current_time()
                while True:
                    event = self._outbox.change_event()
                    # Targets queued to are handed over in memory; the table is scanned only
                    # at start and then every SUPERVISE_INTERVAL, as a safety net (a read on
                    # every change was one more round trip per alert).
                    targets = self._outbox.new_targets()
                    if trio.current_time() >= next_scan:
                        targets |= await self._outbox.pending_targets()
                        next_scan = trio.current_time() + SUPERVISE_INTERVAL
                    for target in targets - self._workers:
                        self._workers.add(target)
                        nursery.start_soon(self._worker, target, None)
                    if trio.current_time() >= next_prune:
                        await self._prune()
                        next_prune = trio.current_time() + PRUNE_INTERVAL
                    with trio.move_on_at(next_scan):
                        await event.wait()
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
                while await self._due_before(deadline):
                    event = self._outbox.change_event()
                    with trio.move_on_after(DRAIN_POLL):
                        await event.wait()
            else:
                async with trio.open_nursery() as nursery:
                    for target in await self._outbox.pending_targets():
                        nursery.start_soon(self._worker, target, deadline)
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

    async def _worker(self, target: Target, until: float | None) -> None:
        """Serve one URL. With ``until`` (drain), return once nothing is due before it.

        While the table holds no pending row for this URL but those handed over by
        ``Outbox.enqueue`` (``clean``), the worker sends what it is handed without reading
        it back: the rows are committed before they are handed over (invariant 2), in the
        order they were queued. Anything else (a retry, quiet hours, a rate limit, a row
        held back by a silence, more rows than were kept, a restart) sends it back to the
        table until the table is empty of pending rows again."""
        channel, index = target
        self._outbox.subscribe(target)
        clean = False
        try:
            while True:
                event = self._outbox.change_event()
                now = self._wall()
                fresh = self._outbox.take_fresh(target)
                if clean and fresh is not None and all(r.next_attempt <= now for r in fresh):
                    if fresh:
                        clean = await self._handle(channel, index, fresh, now)
                        continue
                    if until is not None:
                        return
                    # Another process could queue rows (none does today): look again now
                    # and then.
                    with trio.move_on_after(SUPERVISE_INTERVAL) as idle:
                        await event.wait()
                    clean = not idle.cancelled_caught
                    continue
                # Read the table. Rows handed over before this point are in it (committed),
                # so what was taken above is dropped, not sent twice.
                clean = False
                rows = await self._outbox.due(channel, index, now, DUE_BATCH)
                if rows:
                    await self._handle(channel, index, rows, now)
                    continue
                due = await self._outbox.next_due(channel, index)
                if due is None:
                    # Nothing pending: from here on, what is handed over is all there is.
                    clean = True
                    continue
                wait = max(0.0, due - now)
                if until is not None and trio.current_time() + wait > until:
                    return
                with trio.move_on_after(wait):
                    await event.wait()
        finally:
            self._outbox.unsubscribe(target)

    # -- one pass -----------------------------------------------------------------------------

    async def _handle(self, channel: str, index: int, rows: list[OutboxRow], now: float) -> bool:
        """Send (or expire, or finish as silenced) ``rows``, due rows of one URL, oldest
        first. True when every one of them is finished, False when some are left pending."""
        settings = self._config.channels.get(channel)
        if settings is None or index >= len(settings.urls):
            await self._expire(channel, rows, f"channel {channel} URL #{index} is not configured")
            return True
        max_age = self._config.dispatch.max_age
        # Age counts from when a row became due, not when it was queued: a row held through
        # a weekend of quiet hours has not been failing all that time.
        old = [r for r in rows if now - r.due_since > max_age]
        if old:
            await self._expire(channel, old, f"undelivered after {max_age:g}s")
            rows = [r for r in rows if now - r.due_since <= max_age]
            if not rows:
                return True
        rows = await self._unsilenced(channel, index, rows, now)
        if not rows:
            return True
        rate = self._rate((channel, index), settings)
        if rate is None:
            # No limit: the whole batch goes out, in order, before the next read (one row a
            # read made a backlog cost O(backlog) a row).
            return await self._send_rows(channel, index, settings, rows)
        t = trio.current_time()
        available = rate.available(t)
        if available < 1:
            await trio.sleep_until(rate.next_free(t))
            return False
        if len(rows) > available:
            chunks = self._digest_chunks(channel, index, settings, rows, available)
            if chunks:
                await self._send_digests(channel, index, settings, chunks, rate)
                return False
            # The oldest row does not fit in one message even alone: it goes on its own,
            # split, with its progress kept per part (parts_done).
        await self._send_row(channel, index, settings, rows[0], rate)
        return False

    async def _unsilenced(
        self, channel: str, index: int, rows: list[OutboxRow], now: float
    ) -> list[OutboxRow]:
        """``rows`` less those whose alerts are all silenced now (finished as ``silenced``);
        a partly silenced row comes back re-written without the silenced alerts.

        A silence added after an alert was queued (say during quiet hours, or while a channel
        fails) must still keep it from the user: dispatch checked silences only when it
        queued the row. A row whose alerts are not stored (a fallback report) or that is
        half sent (parts_done) is sent as it is."""
        if self._silences is None:
            return rows
        await self._silences.refresh(now)
        if not any(s.active(now) for s in self._silences.current):
            return rows
        alerts = await self._outbox.alerts(i for r in rows for i in r.alert_ids)
        keep: list[OutboxRow] = []
        muted: list[tuple[OutboxRow, str]] = []  # (row, the silences that cover it)
        for row in rows:
            stored = [alerts.get(i) for i in row.alert_ids]
            found = [a for a in stored if a is not None]
            if not row.alert_ids or len(found) < len(stored):
                keep.append(row)
                continue
            matched = {a.id: self._silences.match(a, now) for a in found}
            loud = [a for a in found if matched[a.id] is None]
            if not loud:
                muted.append((row, ",".join(sorted({s.id for s in matched.values() if s}))))
            elif len(loud) < len(found) and row.parts_done == 0:
                title, body = summarize(
                    loud[0].rule,
                    loud[0].key,
                    loud,
                    _zone(self._config.daemon.timezone),
                    self._config.dispatch.group_max_items,
                )
                keep.append(attrs.evolve(row, title=title, body=body))
            else:
                keep.append(row)
        for row, by in muted:
            await self._outbox.mark_silenced([row.key], reason=f"silenced by {by}", now=now)
            await self._outbox.set_alert_state(row.alert_ids, "silenced")
            log.info(
                "delivery.silenced channel=%s url=%d key=%s alerts=%d silence=%s",
                channel,
                index,
                row.key,
                len(row.alert_ids),
                by,
            )
        return keep

    def _rate(self, target: Target, settings: ChannelSettings) -> RateLimiter | None:
        if settings.rate_limit is None:
            return None
        known = self._rates.get(target)
        if known is None or known[0] != settings.rate_limit:
            known = (settings.rate_limit, RateLimiter.parse(settings.rate_limit))
            self._rates[target] = known
        return known[1]

    async def _send_parts(
        self,
        settings: ChannelSettings,
        index: int,
        title: str,
        body: str,
        rate: RateLimiter | None,
        *,
        skip: int = 0,
        row_key: str | None = None,
        severity: str = "warning",
    ) -> SendResult:
        """Send a message, split as the service needs; stops at the first failed part."""
        url = settings.urls[index]
        limits = self._notifier.limits(url)
        limit = settings.max_length or limits.body
        parts = split_message(
            title, body, limit, title_in_body=limits.title_in_body, html=limits.html
        )
        result = SendResult(ok=True)
        for number in range(skip, len(parts)):
            part = parts[number]
            if rate is not None:
                # Every part is a message to the service: each waits for a free slot.
                await trio.sleep_until(rate.next_free(trio.current_time()))
            result = await self._notifier.send(
                url, part.title, part.body, service_timeout=settings.timeout, severity=severity
            )
            if rate is not None:
                rate.record(trio.current_time())
            if not result.ok:
                return result
            if row_key is not None and number + 1 < len(parts):
                await self._outbox.mark_parts_done(row_key, number + 1, self._wall())
        return result

    async def _send_rows(
        self, channel: str, index: int, settings: ChannelSettings, rows: list[OutboxRow]
    ) -> bool:
        """Send ``rows`` one after another (no rate limit), marking them delivered in batches
        of at most MARK_BATCH; stops at the first failure. True when all were delivered.

        A crash between a send and its mark resends at most MARK_BATCH rows on restart
        (at-least-once); a delivered row is marked before any later failure is handled."""
        done: list[OutboxRow] = []
        try:
            for row in rows:
                result = await self._send_parts(
                    settings,
                    index,
                    row.title,
                    row.body,
                    None,
                    skip=row.parts_done,
                    row_key=row.key,
                    severity=row.severity,
                )
                if not result.ok:
                    await self._delivered(channel, index, done)
                    done = []
                    await self._failed(channel, index, [row], result)
                    return False
                done.append(row)
                if len(done) >= MARK_BATCH:
                    await self._delivered(channel, index, done)
                    done = []
        finally:
            if done:
                # Also on cancellation: what the service accepted is not sent again.
                with trio.CancelScope(shield=True):
                    await self._delivered(channel, index, done)
        return True

    async def _delivered(self, channel: str, index: int, rows: list[OutboxRow]) -> None:
        if not rows:
            return
        now = self._wall()
        await self._outbox.mark_delivered([r.key for r in rows], now)
        for row in rows:
            self._metrics.delivered(channel, max(0.0, now - row.due_since))
            log.info(
                "delivery.sent channel=%s url=%d key=%s attempts=%d",
                channel,
                index,
                row.key,
                row.attempts + 1,
            )

    async def _send_row(
        self,
        channel: str,
        index: int,
        settings: ChannelSettings,
        row: OutboxRow,
        rate: RateLimiter | None,
    ) -> None:
        result = await self._send_parts(
            settings,
            index,
            row.title,
            row.body,
            rate,
            skip=row.parts_done,
            row_key=row.key,
            severity=row.severity,
        )
        if result.ok:
            now = self._wall()
            await self._outbox.mark_delivered([row.key], now)
            self._metrics.delivered(channel, max(0.0, now - row.due_since))
            log.info(
                "delivery.sent channel=%s url=%d key=%s attempts=%d",
                channel,
                index,
                row.key,
                row.attempts + 1,
            )
        else:
            await self._failed(channel, index, [row], result)

    def _digest_chunks(
        self,
        channel: str,
        index: int,
        settings: ChannelSettings,
        rows: list[OutboxRow],
        budget: int,
    ) -> list[list[OutboxRow]]:
        """Rows packed, oldest first, into at most ``budget`` digest messages that each fit the
        service in one message (never split, so a message is all-or-nothing for its rows).
        Stops before a row too long to fit any digest message; empty when that is the first."""
        limits = self._notifier.limits(settings.urls[index])
        limit = settings.max_length or limits.body
        max_items = self._config.dispatch.group_max_items

        def fits(chunk: list[OutboxRow]) -> bool:
            if limit is None:
                return True
            # The longest title this pass can give (marker digits included).
            title, body = digest_text(
                channel, chunk, max_items, of=len(rows), number=(budget, budget)
            )
            parts = split_message(
                title, body, limit, title_in_body=limits.title_in_body, html=limits.html
            )
            return len(parts) == 1

        chunks: list[list[OutboxRow]] = []
        current: list[OutboxRow] = []
        for row in rows:
            if fits([*current, row]):
                current.append(row)
                continue
            if current:
                chunks.append(current)
                current = []
                if len(chunks) >= budget:
                    break
            if not fits([row]):
                break
            current = [row]
        if current:
            chunks.append(current)
        return chunks

    async def _send_digests(
        self,
        channel: str,
        index: int,
        settings: ChannelSettings,
        chunks: list[list[OutboxRow]],
        rate: RateLimiter,
    ) -> None:
        max_items = self._config.dispatch.group_max_items
        total = sum(len(c) for c in chunks)
        for number, chunk in enumerate(chunks):
            title, body = digest_text(
                channel, chunk, max_items, of=total, number=(number + 1, len(chunks))
            )
            severity = highest_severity(r.severity for r in chunk)
            result = await self._send_parts(settings, index, title, body, rate, severity=severity)
            if not result.ok:
                # Rows of messages already accepted stay delivered; this message's rows and
                # those not tried yet back off together (the service is refusing now).
                await self._failed(channel, index, [r for c in chunks[number:] for r in c], result)
                return
            now = self._wall()
            await self._outbox.mark_delivered([r.key for r in chunk], now)
            for row in chunk:
                self._metrics.delivered(channel, max(0.0, now - row.due_since))
            log.info("delivery.digest channel=%s url=%d rows=%d", channel, index, len(chunk))

    async def _failed(
        self, channel: str, index: int, rows: list[OutboxRow], result: SendResult
    ) -> None:
        now = self._wall()
        dispatch = self._config.dispatch
        self._metrics.failed(channel)
        if not result.recoverable:
            await self._expire(channel, rows, f"not recoverable: {result.detail}")
            return
        last_chance = [r for r in rows if now - r.due_since >= dispatch.max_age]
        if last_chance:
            await self._expire(
                channel, last_chance, f"undelivered after {dispatch.max_age:g}s: {result.detail}"
            )
        for row in rows:
            if row in last_chance:
                continue
            delay = retry_delay(
                row.attempts + 1, dispatch.retry_initial, dispatch.retry_max, self._rng
            )
            # The last try comes at the age limit, not past it.
            next_attempt = min(now + delay, row.due_since + dispatch.max_age)
            await self._outbox.mark_retry(
                [row.key], next_attempt=next_attempt, error=result.detail, now=now
            )
            log.warning(
                "delivery.retry channel=%s url=%d key=%s attempts=%d in=%.1f error=%s",
                channel,
                index,
                row.key,
                row.attempts + 1,
                next_attempt - now,
                result.detail,
            )

    async def _expire(self, channel: str, rows: list[OutboxRow], reason: str) -> None:
        now = self._wall()
        await self._outbox.mark_expired([r.key for r in rows], error=reason, now=now)
        for row in rows:
            log.error(
                "delivery.expired channel=%s url=%d key=%s attempts=%d reason=%s last_error=%s",
                channel,
                row.url_index,
                row.key,
                row.attempts,
                reason,
                row.last_error,
            )
        fallback = self._config.dispatch.fallback_channel
        settings = self._config.channels.get(fallback) if fallback else None
        if fallback is None or settings is None or fallback == channel:
            return
        title = f"alertd could not deliver {len(rows)} notification(s) to {channel}"
        lines = [f"Gave up: {reason}."]
        for row in rows:
            lines.append(f"\u2022 {row.title}")
            if row.last_error:
                lines.append(f"  last error: {row.last_error}")
        body = "\n".join(lines)
        ids = [f"expired:{r.key}" for r in rows]
        await self._outbox.enqueue(
            [
                Notification(
                    key=notification_key(fallback, i, ids),
                    channel=fallback,
                    url_index=i,
                    title=title,
                    body=body,
                    alert_ids=tuple(ids),
                    created=now,
                    severity="critical",  # an alert was lost: the loudest there is
                )
                for i in range(len(settings.urls))
            ]
        )

    async def _prune(self) -> None:
        keep = max(KEEP_FINISHED, self._config.dispatch.max_age)
        removed = await self._outbox.prune(self._wall() - keep)
        if removed:
            log.info("delivery.pruned rows=%d", removed)
