"""Rate limits and digests: a channel with a ``rate_limit`` never gets more messages than it
allows, and a backlog larger than what it allows right now goes out as digests instead of a
flood.

Each digest message carries whole rows and fits the service in one message (never split, so
a message is all-or-nothing for its rows); no more go out than the limit allows now (the
other rows wait for the next free slot); and each message's rows are recorded delivered as
soon as it is accepted, so a later failure never makes the user get them twice.

The same path serves a URL that is *behind* (``backlog``: its due rows, one message each,
would take longer than ``[dispatch] catch_up``), with or without a rate limit: what waits
goes out as digests, oldest first, and single messages resume once the queue is short.
"""

from __future__ import annotations

from collections.abc import Callable

import attrs
import trio

from alertd.config.model import ChannelSettings, Config
from alertd.messages.digest import digest_text
from alertd.messages.lateness import with_marker
from alertd.messages.level import combined_level
from alertd.notify.backlog import behind
from alertd.notify.ratelimit import RateLimiter
from alertd.notify.sending import Sender
from alertd.store.handoff import Target
from alertd.store.notifications import OutboxRow


def pack(
    rows: list[OutboxRow], budget: int, fits: Callable[[list[OutboxRow]], bool]
) -> list[list[OutboxRow]]:
    """Rows packed, oldest first, into at most ``budget`` chunks that each ``fits``. Stops
    before a row that does not fit even alone; empty when that is the first."""
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


@attrs.define
class Digests:
    """The rate limiters of one delivery (per URL, on the trio clock), and what a pass sends
    under them."""

    sender: Sender
    _rates: dict[Target, tuple[str, RateLimiter]] = attrs.field(factory=dict)
    catch_ups: int = 0  # passes sent as digests because the URL was behind

    def rate(self, target: Target, settings: ChannelSettings) -> RateLimiter | None:
        """The URL's limiter; a new one when its ``rate_limit`` changed (reload)."""
        if settings.rate_limit is None:
            return None
        known = self._rates.get(target)
        if known is None or known[0] != settings.rate_limit:
            known = (settings.rate_limit, RateLimiter.parse(settings.rate_limit))
            self._rates[target] = known
        return known[1]

    async def send(
        self,
        config: Config,
        target: Target,
        settings: ChannelSettings,
        rows: list[OutboxRow],
        rate: RateLimiter,
    ) -> None:
        """One pass over due ``rows`` under ``rate``: wait for a free slot, then send digests
        when more rows are due than the limit allows now or the URL is behind, else the
        oldest row alone."""
        t = trio.current_time()
        available = rate.available(t)
        if available < 1:
            await trio.sleep_until(rate.next_free(t))
            return
        late = behind(len(rows), self.sender.times.estimate(settings.urls[target[1]]),
                      config.dispatch.catch_up)  # fmt: skip
        if len(rows) > available or late:
            chunks = self._chunks(config, target, settings, rows, available)
            if chunks:
                if len(rows) <= available:  # within the limit, but behind
                    self.catch_ups += 1
                await self._send_digests(config, target, settings, chunks, rate)
                return
            # The oldest row does not fit in one message even alone: it goes on its own,
            # split, with its progress kept per part (parts_done).
        await self.sender.send_in_order(config, target, settings, rows[:1], rate)

    async def catch_up(
        self, config: Config, target: Target, settings: ChannelSettings, rows: list[OutboxRow]
    ) -> bool:
        """Due ``rows`` of a URL that is behind (no rate limit) as digests, each one message
        of the service, in order. True when every row was delivered."""
        chunks = self._chunks(config, target, settings, rows, len(rows))
        if not chunks:
            # The oldest row does not fit in one message even alone: it goes on its own.
            await self.sender.send_in_order(config, target, settings, rows[:1])
            return False
        self.catch_ups += 1
        done = await self._send_digests(config, target, settings, chunks, None)
        return done and sum(len(c) for c in chunks) == len(rows)

    def _late(self, config: Config, chunk: list[OutboxRow], body: str) -> str:
        """``body`` with the late marker of its oldest row, as a single message gets it."""
        oldest = min(r.created for r in chunk)
        late = (oldest, self.sender.wall(), config.dispatch.late_after, config.daemon.timezone)
        return with_marker(body, *late)

    def _chunks(
        self,
        config: Config,
        target: Target,
        settings: ChannelSettings,
        rows: list[OutboxRow],
        budget: int,
    ) -> list[list[OutboxRow]]:
        channel, index = target
        max_items = config.dispatch.group_max_items
        unlimited = self.sender.length_limit(settings, index) is None

        def fits(chunk: list[OutboxRow]) -> bool:
            if unlimited:
                return True
            # The longest title this pass can give (marker digits included).
            title, body = digest_text(
                channel, chunk, max_items, of=len(rows), number=(budget, budget)
            )
            body = self._late(config, chunk, body)
            return len(self.sender.parts(settings, index, title, body)) == 1

        return pack(rows, budget, fits)

    async def _send_digests(
        self,
        config: Config,
        target: Target,
        settings: ChannelSettings,
        chunks: list[list[OutboxRow]],
        rate: RateLimiter | None,
    ) -> bool:
        """Send ``chunks``, one digest each, oldest first; False at the first refusal."""
        channel, index = target
        max_items = config.dispatch.group_max_items
        total = sum(len(c) for c in chunks)
        for number, chunk in enumerate(chunks):
            title, body = digest_text(
                channel, chunk, max_items, of=total, number=(number + 1, len(chunks))
            )
            body = self._late(config, chunk, body)
            level = combined_level(r.severity for r in chunk)
            await self.sender.outbox.mark_handed(chunk)
            alerts = await self.sender.alerts_of(settings, index, chunk)
            result = await self.sender.send(
                settings, index, title, body, rate, level=level, alerts=alerts, carrying=chunk
            )
            if not result.ok:
                # Rows of messages already accepted stay delivered; this message's rows and
                # those not tried yet back off together (the service is refusing now).
                rest = [r for c in chunks[number:] for r in c]
                with trio.CancelScope(shield=True):
                    await self.sender.outcomes.record(config, target, rest, result)
                return False
            with trio.CancelScope(shield=True):  # accepted: not to be sent again
                await self.sender.outcomes.record(config, target, chunk, result, digest=True)
        return True
