"""One account's websocket session: connect, log in, subscribe, read, reconnect, forever.

This is only the I/O around the account's stream health (``health.StreamHealth``, where every
decision about down, gap, stale, errors and the login window is made): it opens connections
(through ``transport``), sends the login and subscribe frames, reads frames, pings, sleeps
the backoff and until the machine's next deadline, and carries out what the machine answers.
Events go into the account's ``OutBuffer``; a separate forwarder task moves them to the
shared channel, so the reader never waits on a slow consumer. Log lines go to this module's
logger, connection facts to the capture (``--record``).

What the peer says enters here, so this is where known secrets are masked (``redact``): in
each frame before the capture, stream health and the decoder see it, and in the reason every
connection ends with (a close reason, a handshake error), so an exchange that echoes the API
key cannot put it into an alert, the outbox or a capture.
"""

from __future__ import annotations

import contextlib
import logging
import math
import random
from collections.abc import Iterable
from datetime import UTC, datetime
from functools import partial

import attrs
import trio

from alertd.config.model import AccountSettings
from alertd.events import Event
from alertd.protocols import decoder_for
from alertd.sources import outputs, redact
from alertd.sources.admission import Admission
from alertd.sources.auth import Authenticator, AuthError
from alertd.sources.backoff import Backoff
from alertd.sources.buffer import OutBuffer
from alertd.sources.capture import Recorder
from alertd.sources.health import StreamHealth
from alertd.sources.keepalive import Keepalive
from alertd.sources.login import LoginReply
from alertd.sources.streams import HealthPolicy, watched_streams
from alertd.sources.transport import Connection, ConnectionLost, parse_url, run_connection

log = logging.getLogger(__name__)

MESSAGE_QUEUE_SIZE = 64  # trio-websocket's own queue; ours (OutBuffer) is the real buffer


class SessionConfigError(ValueError):
    """The account's settings cannot work (bad template, unknown stream): no retry helps."""


@attrs.frozen(kw_only=True)
class AccountStatistics(outputs.HealthStatistics):
    """An account's source at one moment: its stream health and its buffer."""

    overflow_dropped: int  # events dropped by a full buffer (each one in a stream.gap)
    conflated: int  # books replaced by a newer one before they went out
    queued: int  # events waiting in the buffer


def account_statistics(health: StreamHealth, buffer: OutBuffer) -> AccountStatistics:
    return AccountStatistics(
        **attrs.asdict(health.statistics(), recurse=False),
        overflow_dropped=buffer.dropped,
        conflated=buffer.conflated,
        queued=len(buffer),
    )


def now_utc() -> datetime:
    return datetime.now(UTC)


@attrs.define(eq=False)
class Session:
    """One account's session; ``run`` reconnects forever until cancelled.

    ``health`` and ``buffer`` outlive the session: Sources hands each session of an account
    the same ones (after a reload changed the settings, or a crash), so the next session
    forwards the events still waiting and reports the outage the previous one left.

    On cancellation every connection is closed (trio-websocket's close handshake is cut short
    by the cancellation; the socket is closed regardless) and no task is left behind; a
    connection that was up is recorded in ``health`` as lost.
    """

    settings: AccountSettings
    send: trio.MemorySendChannel[Event]
    health: StreamHealth = attrs.field()
    buffer: OutBuffer = attrs.field()
    recorder: Recorder | None = None
    rng: random.Random = attrs.field(factory=random.Random)
    # The secrets masked in what the peer sends: by default the account's own and every one
    # the process registered (redact.PROCESS).
    redactor: redact.Redactor = attrs.field()
    # The gate every connection attempt passes (one per process: sources/admission); None
    # lets every attempt through (a session run alone, tests).
    admission: Admission | None = None
    # What pings the connection (one per process: Sources'); None: the session runs its own.
    keepalive: Keepalive | None = None

    _auth: Authenticator = attrs.field(init=False)
    _subscribe: list[str] = attrs.field(init=False)  # the streams as configured
    _backoff: Backoff = attrs.field(init=False)
    _lost_reason: str | None = None
    _wake: trio.Event = attrs.field(factory=trio.Event)  # a deadline came nearer
    # Where the connection's ticking task is started, once stream health has a deadline
    # (account streams have none: most connections never need the task).
    _timers: trio.Nursery | None = None
    _ticking: bool = False
    # Where the forwarder is started, once an event waits in the buffer (most events go
    # straight into the shared channel: most sessions never need the task).
    _tasks: trio.Nursery | None = None
    _forwarding: bool = False
    _clock: trio.abc.Clock = attrs.field(init=False)  # the run's (a frame's ``now``)

    @health.default
    def _fresh_health(self) -> StreamHealth:
        return StreamHealth(self.settings.name, decoder_for(self.settings.exchange, self.name))

    @buffer.default
    def _fresh_buffer(self) -> OutBuffer:
        return OutBuffer(exchange=self.settings.exchange, account=self.name, capacity=0)

    @redactor.default
    def _account_redactor(self) -> redact.Redactor:
        return redact.for_account(self.settings)

    def __attrs_post_init__(self) -> None:
        s = self.settings
        try:
            self._auth = Authenticator.build(s.name, s.auth)
            self.health.policy = HealthPolicy.for_account(s, self.health.decoder)
            self._subscribe = list(watched_streams(self.health.decoder, s.streams).values())
            parse_url(s.url)
        except (AuthError, ValueError) as e:
            raise SessionConfigError(f"account {s.name!r}: {e}") from None
        self.buffer.capacity = s.queue_size
        self._backoff = Backoff(
            initial=s.backoff_initial,
            maximum=s.backoff_max,
            stable_after=s.stable_after,
            rng=self.rng,
        )

    @property
    def name(self) -> str:
        return self.settings.name

    def statistics(self) -> AccountStatistics:
        return account_statistics(self.health, self.buffer)

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        self._clock = trio.lowlevel.current_clock()
        async with trio.open_nursery() as nursery:
            self._tasks = nursery
            if not self.buffer.idle:  # left by the previous session of the account
                self._start_forwarding()
            if self.keepalive is None:  # run alone: a pinger of its own
                self.keepalive = Keepalive()
                await nursery.start(self.keepalive.run)
            task_status.started()
            self._apply(self.health.session_started(wall=now_utc()))
            try:
                await self._reconnect_forever()
            finally:
                self._apply(self.health.stopped(now=trio.current_time(), wall=now_utc()))

    # -- carrying out what stream health says -----------------------------------------------

    def _apply(self, todo: Iterable[outputs.Output]) -> LoginReply | None:
        """Carry out what stream health asks, in order; the login verdict among it, if any."""
        verdict = None
        for out in todo:
            if isinstance(out, outputs.Emit):
                self._queue(*out)
            elif isinstance(out, outputs.Log):
                log.log(out.level, out.message, *out.args)
            elif isinstance(out, outputs.Record):
                if self.recorder is not None:
                    self.recorder.record_fact(
                        self.name, out.fact, reason=out.reason, stopped=out.stopped
                    )
            elif isinstance(out, outputs.Wakeup):
                self._wake.set()
                self._start_ticking()
            elif isinstance(out, outputs.LoginAnswered):
                verdict = out.verdict
        return verdict

    def _feed(self, frame: str | bytes) -> LoginReply | None:
        """Record one received frame and hand it to stream health, known secrets masked."""
        frame = self.redactor.frame(frame)
        if self.recorder is not None:
            self.recorder.record_frame(self.name, frame)
        now = self._clock.current_time()  # trio.current_time() without its two calls
        return self._apply(self.health.frame(frame, now=now, wall=datetime.now(UTC)))

    # -- the connection loop ----------------------------------------------------------------

    async def _reconnect_forever(self) -> None:
        while True:
            reason = self.redactor.text(await self._connect_once())
            now = trio.current_time()
            if self.health.connected:
                self._backoff.disconnected(now)
            self._apply(self.health.ended(reason, now=now, wall=now_utc()))
            delay = self._backoff.next_delay()
            log.info("stream.reconnect account=%s delay=%.2f", self.name, delay)
            await trio.sleep(delay)
            self.health.retrying()

    async def _connect_once(self) -> str:
        """One connection from handshake to loss; returns why it ended."""
        s = self.settings
        self._lost_reason = None
        if self.admission is not None:
            await self.admission.admit(s.url)
        try:
            ctx = self._auth.context()
            headers = self._auth.headers(ctx)
            login = self._auth.login_frame(ctx)
        except AuthError as e:
            self._apply(self.health.error(str(e), wall=now_utc()))
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

    async def _serve(self, conn: Connection, *, login: str | None) -> str:
        """Log in, subscribe, then read until the connection is lost; returns why."""
        try:
            return await self._serve_connection(conn, login)
        except ConnectionLost as e:
            return self._lost_reason or self._closed(e)

    async def _serve_connection(self, conn: Connection, login: str | None) -> str:
        replies = self.health.policy.login
        if login is not None:
            await conn.send(login)
            self.health.login_sent(now=trio.current_time())
            if replies is not None and replies.accept_when:
                refused = await self._await_login(conn)
                if refused is not None:
                    return refused
        for frame in self.health.decoder.subscribe_frames(self._subscribe):
            await conn.send(frame)
        now = trio.current_time()
        self._backoff.connected(now)
        self._apply(self.health.came_up(now=now, wall=now_utc()))
        # The frames are read in this task; the keepalive and the ticking task (if stream
        # health has deadlines) cancel the reading with the reason the connection is lost.
        async with trio.open_nursery() as nursery:
            self._timers = nursery
            try:
                if self.health.next_wakeup() is not None:
                    self._start_ticking()
                with self._pinged(conn, nursery.cancel_scope):
                    await self._read(conn, nursery.cancel_scope)
            finally:
                self._timers = None
        return self._lost_reason or "connection ended"

    def _pinged(
        self, conn: Connection, scope: trio.CancelScope
    ) -> contextlib.AbstractContextManager[None]:
        """The keepalive's watch over ``conn`` (none with ``ping_interval = 0``)."""
        s = self.settings
        if s.ping_interval <= 0 or self.keepalive is None:
            return contextlib.nullcontext()
        return self.keepalive.watch(
            conn,
            interval=s.ping_interval,
            timeout=s.ping_timeout,
            on_dead=partial(self._half_open, scope),
        )

    def _half_open(self, scope: trio.CancelScope, reason: str) -> None:
        """No pong within ``ping_timeout``: the connection is half-open (the peer neither
        sends nor answers) and is dropped."""
        log.warning(
            "stream.heartbeat_timeout account=%s timeout=%.1f",
            self.name,
            self.settings.ping_timeout,
        )
        self._lose(reason, scope)

    async def _await_login(self, conn: Connection) -> str | None:
        """Read until the server accepts or rejects the login; the reason it failed, or None.
        Other frames that arrive meanwhile are handled as usual."""
        with trio.move_on_after(self.health.policy.login_timeout):
            while True:
                reply = self._feed(await conn.receive())
                if reply == "accepted":
                    return None
                if reply == "rejected":
                    return "login rejected"
        self._apply(self.health.login_unanswered(wall=now_utc()))
        return "login timed out"

    def _lose(self, reason: str, scope: trio.CancelScope) -> None:
        if self._lost_reason is None:
            self._lost_reason = reason
        scope.cancel()

    def _closed(self, lost: ConnectionLost) -> str:
        if lost.too_big:
            limit = self.settings.max_message_size
            self._apply(self.health.frame_too_big(limit, wall=now_utc()))
        return lost.reason

    # -- per-connection tasks ---------------------------------------------------------------

    async def _read(self, conn: Connection, scope: trio.CancelScope) -> None:
        while True:
            try:
                frame = await conn.receive()
            except ConnectionLost as e:
                self._lose(self._closed(e), scope)
                return
            if self._feed(frame) == "rejected":
                self._lose("login rejected", scope)
                return

    def _start_ticking(self) -> None:
        if not self._ticking and self._timers is not None:
            self._ticking = True
            self._timers.start_soon(self._keep_time)

    async def _keep_time(self) -> None:
        """Ticks stream health at its deadlines (stale streams, the snapshot wait), from the
        first deadline of a connection to its end."""
        try:
            while True:
                # A fresh event before ticking, so that a deadline brought nearer after this
                # look (a stream re-armed by a frame) wakes the wait below to look again.
                self._wake = trio.Event()
                self._apply(self.health.tick(now=trio.current_time(), wall=now_utc()))
                at = self.health.next_wakeup()
                with trio.move_on_at(math.inf if at is None else at):
                    await self._wake.wait()
        finally:
            self._ticking = False

    def _start_forwarding(self) -> None:
        if not self._forwarding and self._tasks is not None:
            self._forwarding = True
            self._tasks.start_soon(self._forward, self._tasks.cancel_scope)

    async def _forward(self, scope: trio.CancelScope) -> None:
        """Moves the buffer's events to the shared channel, from the first event that had to
        wait to the session's end."""
        send = self.send
        buffer = self.buffer
        try:
            while True:
                event = await buffer.get()
                try:
                    # While the channel has room, no checkpoint (an awaited send is a task
                    # switch an event, under a flood more than the rest of the forwarding);
                    # get checkpoints once the buffer is empty, send below once the channel
                    # is full, and the buffer grows only while the reader runs: no spin.
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

    def _queue(self, event: Event, stream: str, bounded: bool = True) -> None:
        """Hand ``event`` on without waiting: straight into the shared channel when nothing
        waits in the buffer and the channel has room, else into the buffer for the forwarder
        (two task switches an event saved under load). Order is kept: the direct path is
        taken only with the buffer empty (a forwarder blocked on a full channel holds its
        event there, so the channel has no room for this one either)."""
        buffer = self.buffer
        if buffer.idle:
            try:
                self.send.send_nowait(event)
                return
            except (trio.WouldBlock, trio.BrokenResourceError, trio.ClosedResourceError):
                pass  # the forwarder waits for room, or finds the consumer gone
        buffer.put(event, stream=stream, bounded=bounded)
        self._start_forwarding()
