"""One account's websocket session: connect, log in, subscribe, read, reconnect, forever.

Where a frame becomes an event: ``Session._handle`` hands each received frame to the
account's decoder and puts the events in the account's ``OutBuffer``; a separate forwarder
task moves them to the shared channel, so the reader never waits on a slow consumer.

Connection facts become events on the same path (stream name ``"*"``, the whole connection):

- ``stream.disconnected`` (with the reason) once when a connection that was up is lost, or
  when the very first attempt fails; failed retries after that stay quiet in the event stream
  (they are logged) until the connection is back. A session stopped while connected (its
  account restarted for a reload or after a crash) leaves the loss in its ``Carry``; the next
  session of the account announces it, and reports the gap, like any other.
- ``stream.connected`` (with ``downtime``) when up again: handshake, login and subscribe done.
- ``stream.gap`` (why ``offline``, since = the last frame received before the loss, or the
  connect when there was none; until = back) after a reconnect. On Piexgo
  the balance snapshot that follows a ``pinfo`` subscribe is awaited first (up to
  ``snapshot_wait``) and the balances that differ from the last ones seen before the loss go
  in ``evidence``. A gap that could not be reported (the connection fell again first) widens
  into the next one.
- ``stream.stale`` once per silence of a stream with a staleness budget; the next frame on
  that stream re-arms it.
- ``stream.error`` for a frame the decoder cannot read (the stream goes on), for a rejected
  or unanswered login, and for a frame over ``max_message_size`` (trio-websocket closes the
  connection with 1009 on those, so the session reconnects).

trio-websocket's exceptions end at this module: they become a reason string.
"""

from __future__ import annotations

import logging
import math
import random
from datetime import UTC, datetime
from functools import partial
from typing import Any

import attrs
import trio
import trio_websocket
from trio_websocket import CloseReason, WebSocketConnection

from alertd.config.model import AccountSettings
from alertd.events import (
    BalanceEvidence,
    Event,
    StreamConnected,
    StreamDisconnected,
    StreamError,
    StreamGap,
    StreamStale,
)
from alertd.protocols import Decoder, ProtocolError, excerpt
from alertd.sources.auth import Authenticator, AuthError
from alertd.sources.backoff import Backoff
from alertd.sources.buffer import OutBuffer
from alertd.sources.capture import Recorder
from alertd.sources.snapshot import SnapshotReader
from alertd.sources.transport import describe_close, parse_url, run_connection

log = logging.getLogger(__name__)

CONNECTION = "*"  # the stream name of facts about the whole connection
MESSAGE_QUEUE_SIZE = 64  # trio-websocket's own queue; ours (OutBuffer) is the real buffer
MESSAGE_TOO_BIG = 1009


class SessionConfigError(ValueError):
    """The account's settings cannot work (bad template, unknown stream): no retry helps."""


@attrs.define
class SourceStats:
    """Counters for metrics, read by the daemon; written only by the account's session."""

    frames: int = 0  # frames received
    decode_errors: int = 0  # frames that could not be read (malformed, unknown, oversize)
    reconnects: int = 0  # connection attempts after the first
    connected: bool = False
    overflow_dropped: int = 0  # events dropped by a full buffer (each one in a stream.gap)
    conflated: int = 0  # books replaced by a newer one before they went out
    last_frame: float | None = None  # trio clock


def now_utc() -> datetime:
    return datetime.now(UTC)


@attrs.define
class _Gap:
    """An offline window not yet reported, with the balances last seen before it."""

    since: datetime
    before: dict[str, Any]


@attrs.define(eq=False)
class Carry:
    """An account's connection state that outlives one ``Session``: Sources keeps one per
    account and hands it to each session it starts for that account (after a reload changed
    the settings, or a crash), so the next session reports the outage the previous one left.

    Written only by the account's running session. ``buffer`` holds the events not yet
    forwarded (the next session forwards them); ``restart_reason`` is what the next session
    says in ``stream.disconnected`` when the previous one was stopped while connected.
    """

    up: bool = False
    announced_down: bool = False
    lost_at: float | None = None  # trio clock, for downtime
    gap: _Gap | None = None
    # Wall time of the last frame received on this connection (of the connect before any):
    # a lost connection may have delivered nothing since, e.g. half-open for up to
    # ping_interval + ping_timeout before the heartbeat notices, so the gap starts here.
    last_heard: datetime | None = None
    stopped_while_up: bool = False  # the loss is recorded, not yet announced
    restart_reason: str = "session restarted"
    buffer: OutBuffer | None = None


@attrs.define(eq=False)
class Session:
    """One account's session; ``run`` reconnects forever until cancelled.

    On cancellation every connection is closed (trio-websocket's close handshake is cut short
    by the cancellation; the socket is closed regardless) and no task is left behind. The
    events still waiting in the buffer stay in ``carry.buffer``, and a connection that was up
    is recorded there as lost (with its gap): a next session given the same ``carry`` (and
    decoder) forwards them and reports the outage.
    """

    settings: AccountSettings
    decoder: Decoder
    send: trio.MemorySendChannel[Event]
    recorder: Recorder | None = None
    stats: SourceStats = attrs.field(factory=SourceStats)
    rng: random.Random = attrs.field(factory=random.Random)
    carry: Carry = attrs.field(factory=Carry)

    _auth: Authenticator = attrs.field(init=False)
    _streams: dict[str, str] = attrs.field(init=False)  # normalized name -> as configured
    _budgets: dict[str, float] = attrs.field(init=False)  # normalized name -> stale budget
    _buffer: OutBuffer = attrs.field(init=False)
    _backoff: Backoff = attrs.field(init=False)
    _lost_reason: str | None = None
    _login_until: float = 0.0  # trio clock: frames before this may be a login reply
    _last_seen: dict[str, float] = attrs.field(factory=dict)
    _armed: set[str] = attrs.field(factory=set)
    _rearmed: trio.Event = attrs.field(factory=trio.Event)
    _snapshot: SnapshotReader | None = None  # reading Piexgo's balances after a reconnect

    def __attrs_post_init__(self) -> None:
        s = self.settings
        try:
            self._auth = Authenticator.build(s.name, s.exchange, s.auth)
            self._streams = {self.decoder.normalize_stream(n): n for n in s.streams}
            parse_url(s.url)
        except (AuthError, ValueError) as e:
            raise SessionConfigError(f"account {s.name!r}: {e}") from None
        self._budgets = {}
        for name, configured in self._streams.items():
            budget = s.stale_after.get(configured, s.stale_after.get(name))
            if budget is None and self.decoder.is_market_stream(name):
                budget = s.market_stale_after
            if budget is not None and budget > 0:
                self._budgets[name] = float(budget)
        if self.carry.buffer is None:
            self.carry.buffer = OutBuffer(exchange=s.exchange, account=s.name, capacity=0)
        self._buffer = self.carry.buffer
        self._buffer.capacity = s.queue_size
        self._backoff = Backoff(
            initial=s.backoff_initial,
            maximum=s.backoff_max,
            stable_after=s.stable_after,
            rng=self.rng,
        )

    @property
    def name(self) -> str:
        return self.settings.name

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._forward, nursery.cancel_scope)
            task_status.started()
            c = self.carry
            if c.stopped_while_up:
                c.stopped_while_up = False
                log.warning("stream.disconnected account=%s reason=%s", self.name, c.restart_reason)
                self._announce_down(c.restart_reason)
            try:
                await self._reconnect_forever()
            finally:
                if c.up:
                    # Stopped while connected (a reload, a crash): the window until the next
                    # session is back is an outage like any other, reported by that session.
                    self._record_loss()
                    c.stopped_while_up = True
                self.stats.connected = False

    def _record_loss(self) -> None:
        c = self.carry
        c.up = self.stats.connected = False
        c.lost_at = trio.current_time()
        if c.gap is None:
            c.gap = _Gap(since=c.last_heard or now_utc(), before=dict(self.decoder.balances))
        if self.recorder is not None:
            self.recorder.record_fact(self.name, "disconnected")

    # -- the connection loop ----------------------------------------------------------------

    async def _reconnect_forever(self) -> None:
        while True:
            reason = await self._connect_once()
            if self.carry.up:
                self._record_loss()
                self._backoff.disconnected(trio.current_time())
                log.warning("stream.disconnected account=%s reason=%s", self.name, reason)
                self._announce_down(reason)
            elif not self.carry.announced_down:
                log.warning("stream.connect_failed account=%s reason=%s", self.name, reason)
                self._announce_down(reason)
            else:
                log.info("stream.connect_failed account=%s reason=%s", self.name, reason)
            delay = self._backoff.next_delay()
            log.info("stream.reconnect account=%s delay=%.2f", self.name, delay)
            await trio.sleep(delay)
            self.stats.reconnects += 1

    def _announce_down(self, reason: str) -> None:
        self.carry.announced_down = True
        self._emit_fact(StreamDisconnected, reason=reason)

    async def _connect_once(self) -> str:
        """One connection from handshake to loss; returns why it ended."""
        s = self.settings
        self._lost_reason = None
        try:
            ctx = self._auth.context()
            headers = self._auth.headers(ctx)
            login = self._auth.login_frame(ctx)
        except AuthError as e:
            self._error(str(e))
            return "auth templates could not be rendered"
        return await run_connection(
            s.url,
            partial(self._serve, login=login),
            extra_headers=headers,
            message_queue_size=MESSAGE_QUEUE_SIZE,
            max_message_size=s.max_message_size,
            connect_timeout=s.connect_timeout,
            close_timeout=s.close_timeout,
        )

    async def _serve(self, ws: WebSocketConnection, *, login: str | None) -> str:
        """Log in, subscribe, then read until the connection is lost; returns why."""
        try:
            return await self._serve_connection(ws, login)
        except trio_websocket.ConnectionClosed as e:
            return self._lost_reason or self._closed(e.reason)

    async def _serve_connection(self, ws: WebSocketConnection, login: str | None) -> str:
        s = self.settings
        if login is not None:
            await ws.send_message(login)
            self._login_until = trio.current_time() + s.auth.login_timeout
            if self._auth.accept_when:
                refused = await self._await_login(ws)
                if refused is not None:
                    return refused
        for frame in self.decoder.subscribe_frames(list(self._streams.values())):
            await ws.send_message(frame)
        self._came_up()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._read, ws, nursery.cancel_scope)
            if s.ping_interval > 0:
                nursery.start_soon(self._heartbeat, ws, nursery.cancel_scope)
            if self._budgets:
                nursery.start_soon(self._watch_staleness)
            if self.carry.gap is not None:
                nursery.start_soon(self._report_gap, self.carry.gap)
        return self._lost_reason or "connection ended"

    async def _await_login(self, ws: WebSocketConnection) -> str | None:
        """Read until the server accepts or rejects the login; the reason it failed, or None.
        Other frames that arrive meanwhile are handled as usual."""
        timeout = self.settings.auth.login_timeout
        with trio.move_on_after(timeout):
            while True:
                frame = await ws.get_message()
                reply = self._handle(frame)
                if reply == "accepted":
                    log.info("stream.login_ok account=%s", self.name)
                    return None
                if reply == "rejected":
                    return "login rejected"
        self._error(f"login not answered within {timeout:g}s", "")
        return "login timed out"

    def _came_up(self) -> None:
        now = trio.current_time()
        c = self.carry
        c.up = self.stats.connected = True
        c.announced_down = False
        c.last_heard = now_utc()
        self._backoff.connected(now)
        downtime = None if c.lost_at is None else now - c.lost_at
        self._last_seen = dict.fromkeys(self._budgets, now)
        self._armed = set(self._budgets)
        wants_snapshot = self.settings.exchange == "piexgo" and "pinfo" in self._streams
        self._snapshot = SnapshotReader() if c.gap is not None and wants_snapshot else None
        if self.recorder is not None:
            self.recorder.record_fact(self.name, "connected")
        log.info(
            "stream.connected account=%s url=%s downtime=%s",
            self.name,
            self.settings.url,
            "-" if downtime is None else f"{downtime:.2f}",
        )
        self._emit_fact(StreamConnected, downtime=downtime)

    def _lose(self, reason: str, scope: trio.CancelScope) -> None:
        if self._lost_reason is None:
            self._lost_reason = reason
        scope.cancel()

    # -- per-connection tasks ---------------------------------------------------------------

    async def _read(self, ws: WebSocketConnection, scope: trio.CancelScope) -> None:
        while True:
            try:
                frame = await ws.get_message()
            except trio_websocket.ConnectionClosed as e:
                self._lose(self._closed(e.reason), scope)
                return
            if self._handle(frame) == "rejected":
                self._lose("login rejected", scope)
                return

    async def _heartbeat(self, ws: WebSocketConnection, scope: trio.CancelScope) -> None:
        """A websocket ping every ``ping_interval``; no pong within ``ping_timeout`` means the
        connection is half-open (the peer neither sends nor answers) and is dropped."""
        s = self.settings
        while True:
            await trio.sleep(s.ping_interval)
            with trio.move_on_after(s.ping_timeout) as timer:
                try:
                    await ws.ping()
                except trio_websocket.ConnectionClosed as e:
                    self._lose(self._closed(e.reason), scope)
                    return
            if timer.cancelled_caught:
                log.warning(
                    "stream.heartbeat_timeout account=%s timeout=%.1f", self.name, s.ping_timeout
                )
                self._lose(f"no pong within {s.ping_timeout:g}s (connection half-open)", scope)
                return

    async def _watch_staleness(self) -> None:
        while True:
            # A fresh event before looking, so that a stream re-armed after this look (it was
            # left out of the deadline below) wakes the watcher to recompute the deadline.
            self._rearmed = trio.Event()
            now = trio.current_time()
            for stream in sorted(self._armed):
                silent = now - self._last_seen[stream]
                if silent >= self._budgets[stream]:
                    self._armed.discard(stream)
                    log.warning(
                        "stream.stale account=%s stream=%s silent_for=%.1f",
                        self.name,
                        stream,
                        silent,
                    )
                    self._emit_fact(StreamStale, stream=stream, silent_for=silent)
            deadline = min(
                (self._last_seen[s] + self._budgets[s] for s in self._armed), default=math.inf
            )
            with trio.move_on_at(deadline):
                await self._rearmed.wait()

    async def _report_gap(self, gap: _Gap) -> None:
        """Emit the offline gap once the balance snapshot is in (or ``snapshot_wait`` is up)."""
        until = now_utc()
        evidence: tuple[BalanceEvidence, ...] = ()
        snapshot = self._snapshot
        if snapshot is not None:
            with trio.move_on_after(self.settings.snapshot_wait):
                await snapshot.done.wait()
            self._snapshot = None
            evidence = tuple(
                BalanceEvidence(currency=c, before=gap.before.get(c), after=after)
                for c, after in sorted(snapshot.balances.items())
                if gap.before.get(c) != after
            )
        self.carry.gap = None
        log.warning(
            "stream.gap account=%s why=offline since=%s until=%s evidence=%d",
            self.name,
            gap.since.isoformat(),
            until.isoformat(),
            len(evidence),
        )
        self._emit_fact(StreamGap, since=gap.since, until=until, why="offline", evidence=evidence)

    async def _forward(self, scope: trio.CancelScope) -> None:
        send = self.send
        buffer = self._buffer
        try:
            while True:
                event = await buffer.get()
                try:
                    # While the channel has room, hand events on without a checkpoint: an
                    # awaited send is a task switch per event, which under a flood cost more
                    # than the rest of the forwarding. The loop still checkpoints once the
                    # buffer is empty (in get) or the channel is full (in send below), and
                    # the buffer only grows while the reader runs, so it cannot spin.
                    send.send_nowait(event)
                    continue
                except trio.WouldBlock:
                    pass
                try:
                    await send.send(event)
                except trio.Cancelled:
                    # Not delivered (a cancelled send delivers nothing): keep it for the next
                    # session of this account, if there is one.
                    buffer.unget(event)
                    raise
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            log.info("sources.consumer_gone account=%s", self.name)
            scope.cancel()

    # -- frames -----------------------------------------------------------------------------

    def _handle(self, frame: str | bytes) -> str | None:
        """Record, decode and queue one frame. Returns "accepted"/"rejected" for a login reply
        (which is not decoded), else None."""
        now = trio.current_time()
        received = now_utc()
        self.stats.frames += 1
        self.stats.last_frame = now
        self.carry.last_heard = received
        if self.recorder is not None:
            self.recorder.record_frame(self.name, frame)
        if now < self._login_until:
            reply = self._auth.classify(frame)
            if reply == "rejected":
                self._error("login rejected by the server", excerpt(frame))
                self._login_until = 0.0
                return reply
            if reply == "accepted":
                self._login_until = 0.0
                return reply
        if self._snapshot is not None:
            self._snapshot.feed(frame)
        try:
            events = self.decoder.decode(frame, received)
        except ProtocolError as e:
            self.stats.decode_errors += 1
            log.warning(
                "stream.bad_frame account=%s reason=%s excerpt=%s",
                self.name,
                e.reason,
                e.excerpt,
            )
            self._error(e.reason, e.excerpt, bounded=True)
            return None
        for event in events:
            stream = self.decoder.stream_for(event)
            if stream is not None:
                if stream not in self._streams and self._streams:
                    # Cryptology pushes everything unasked: its configured streams (if any)
                    # choose what is watched.
                    continue
                self._seen(stream, now)
            self._queue(event, stream or CONNECTION)
        self.stats.overflow_dropped = self._buffer.dropped
        self.stats.conflated = self._buffer.conflated
        return None

    def _seen(self, stream: str, now: float) -> None:
        if stream in self._budgets:
            self._last_seen[stream] = now
            if stream not in self._armed:
                self._armed.add(stream)
                self._rearmed.set()

    # -- helpers ----------------------------------------------------------------------------

    def _closed(self, reason: CloseReason | None) -> str:
        if reason is not None and reason.code == MESSAGE_TOO_BIG:
            self.stats.decode_errors += 1
            message = (
                f"frame larger than max_message_size ({self.settings.max_message_size} bytes);"
                " trio-websocket closed the connection with 1009, reconnecting"
            )
            log.warning(
                "stream.oversize account=%s limit=%d", self.name, self.settings.max_message_size
            )
            self._error(message, "")
            return "frame too big (1009)"
        return describe_close(reason)

    def _error(self, reason: str, excerpt_text: str = "", *, bounded: bool = False) -> None:
        """A ``stream.error``; ``bounded`` for per-frame errors, which a garbage flood could
        make many of (they then count against the buffer's capacity)."""
        now = now_utc()
        event = StreamError(
            exchange=self.settings.exchange,
            account=self.name,
            time=now,
            received=now,
            stream=CONNECTION,
            reason=reason,
            excerpt=excerpt_text,
        )
        self._queue(event, CONNECTION, bounded=bounded)

    def _emit_fact(self, cls: type[Event], **fields: Any) -> None:
        now = now_utc()
        fields.setdefault("stream", CONNECTION)
        event = cls(
            exchange=self.settings.exchange, account=self.name, time=now, received=now, **fields
        )
        self._queue(event, fields["stream"], bounded=False)

    def _queue(self, event: Event, stream: str, *, bounded: bool = True) -> None:
        """Hand ``event`` on without waiting: straight into the shared channel when nothing
        is waiting in the buffer and the channel has room, else into the buffer for the
        forwarder. Skipping the buffer and the forwarder saves two task switches an event
        under load; order is kept, since the direct path is taken only with the buffer empty
        (and a forwarder blocked on a full channel holds its event there, so the channel has
        no room for this one either)."""
        buffer = self._buffer
        if buffer.idle:
            try:
                self.send.send_nowait(event)
                return
            except (trio.WouldBlock, trio.BrokenResourceError, trio.ClosedResourceError):
                pass  # the forwarder waits for room, or finds the consumer gone
        buffer.put(event, stream=stream, bounded=bounded)
