"""Stream health: one account's connection policy as a sans-IO state machine.

Facts go in: a connection attempt ended, the connection is up, a frame arrived, the session
stopped, time passed. What follows comes out as a list of outputs, in the order they happen:
``Emit`` an event, ``Log`` a line, ``Record`` a capture fact, ``Wakeup`` (call ``tick`` at a
trio time) and ``LoginAnswered``. Nothing here does I/O or reads a clock: every input carries
``now`` (trio seconds, for durations and deadlines) and ``wall`` (UTC, for what people read).
The live session (``session``) is the I/O around it; ``alertd replay`` feeds it capture
records on the capture's clock (``StreamHealth.replay``). So run and replay decide in one
place, and the same frames give the same events:

- every frame is decoded by the account's decoder, and its events pass the stream filter
  (``streams.keeps``); a frame that cannot be read is a ``stream.error`` (the stream goes on).
  Within the login window (from sending the login frame, ``login_timeout`` long) a frame that
  answers the login (``login.LoginReplies``) is not decoded: a rejection is a
  ``stream.error`` with an excerpt, and the session gives up the attempt.
- ``stream.disconnected`` (with the reason) once when a connection that was up is lost, or
  when the very first attempt fails; failed retries after that stay quiet (a log line at
  info) until the connection is back. A session stopped while connected (a reload, a crash)
  leaves the loss here; the next session announces it with ``restart_reason``.
- ``stream.connected`` (with ``downtime``) when up again: handshake, login and subscribe done.
- ``stream.gap`` (why ``offline``; since = the last frame received before the loss, or the
  connect when there was none; until = the reconnect) after a reconnect. On Piexgo with
  ``pinfo`` the balance snapshot that follows the subscribe is awaited first (up to
  ``snapshot_wait``) and the balances that differ from the last ones seen before the loss go
  in ``evidence``. A gap that could not be reported (the connection fell again first) widens
  into the next one.
- ``stream.stale`` once per silence of a stream with a budget, while connected; the next
  frame on that stream re-arms it.

A ``StreamHealth`` outlives the sessions of its account (Sources keeps one per account across
reloads and crashes, with the account's decoder, so orders and balances are remembered). It
belongs to one task at a time.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import attrs

from alertd.config.model import AccountSettings
from alertd.events import (
    BalanceEvidence,
    Event,
    StreamConnected,
    StreamDisconnected,
    StreamError,
    StreamGap,
    StreamStale,
    utc_from_timestamp,
)
from alertd.protocols import Decoder, ProtocolError, decoder_for, excerpt
from alertd.sources.login import LoginReplies, LoginReply
from alertd.sources.snapshot import SnapshotReader
from alertd.sources.streams import (
    CONNECTION,
    StreamFact,
    keeps,
    stale_budgets,
    stream_fact,
    watched_streams,
)

if TYPE_CHECKING:
    from alertd.sources.capture import CaptureRecord

WARNING, INFO = logging.WARNING, logging.INFO
RECORDED_DISCONNECT = "recorded disconnect"  # replay's reason when a capture line gives none


# -- outputs ------------------------------------------------------------------------------------


@attrs.frozen
class Emit:
    """Hand ``event`` on. ``stream`` is where it came from (an overflow gap names it);
    ``bounded`` events count against the account's buffer, facts about the connection never
    do (losing a ``stream.disconnected`` would make alertd blind without saying so)."""

    event: Event
    stream: str = CONNECTION
    bounded: bool = False


@attrs.frozen
class Log:
    """A log line, as ``logging`` takes it: ``message`` with lazy %-style ``args``."""

    level: int
    message: str
    args: tuple[Any, ...] = ()


@attrs.frozen
class Record:
    """A connection fact for the capture. ``stopped``: alertd stopped watching a connection
    that was up (reload, crash, shutdown); an outage only if a next session announces it."""

    fact: StreamFact
    reason: str | None = None
    stopped: bool = False


@attrs.frozen
class Wakeup:
    """Call ``tick`` at trio time ``at``: a deadline came nearer than the last one."""

    at: float


@attrs.frozen
class LoginAnswered:
    """The frame answered the login; the session goes on (accepted) or gives up (rejected)."""

    verdict: LoginReply


Output = Emit | Log | Record | Wakeup | LoginAnswered


# -- settings and snapshots ---------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class HealthPolicy:
    """What an account's settings say about watching it; replaced when a reload changes them."""

    url: str = ""  # for log lines only
    watched: frozenset[str] = frozenset()  # normalized stream names; empty keeps everything
    budgets: Mapping[str, float] = attrs.field(factory=dict)  # stream -> seconds until stale
    snapshot: bool = False  # await Piexgo's balance snapshot before reporting an offline gap
    snapshot_wait: float = 3.0
    login: LoginReplies | None = None  # None: no login frame is sent, nothing answers one
    login_timeout: float = 10.0

    @classmethod
    def for_account(cls, settings: AccountSettings, decoder: Decoder) -> HealthPolicy:
        """``ValueError`` naming the valid forms for a stream the exchange does not have."""
        watched = watched_streams(decoder, settings.streams)
        return cls(
            url=settings.url,
            watched=frozenset(watched),
            budgets=stale_budgets(settings, decoder, watched),
            snapshot=settings.exchange == "piexgo" and "pinfo" in watched,
            snapshot_wait=settings.snapshot_wait,
            login=LoginReplies.for_account(settings.exchange, settings.auth),
            login_timeout=settings.auth.login_timeout,
        )


@attrs.frozen(kw_only=True)
class HealthStatistics:
    """An account's stream health at one moment. Times are trio seconds."""

    frames: int  # frames received
    decode_errors: int  # frames that could not be read (malformed, unknown, oversize)
    reconnects: int  # connection attempts after the first of each session
    connected: bool
    connected_since: float | None  # None while down
    last_frame: float | None


@attrs.frozen
class OfflineWindow:
    """An outage not yet reported as a gap, with the balances last seen before it."""

    since: datetime
    before: Mapping[str, Decimal]


# -- the machine --------------------------------------------------------------------------------


@attrs.define(eq=False)
class StreamHealth:
    """One account's stream health (see the module docstring); build it with ``for_account``.

    Inputs return their outputs. ``next_wakeup`` is when ``tick`` wants calling next; an
    input that brings it nearer also returns a ``Wakeup``."""

    account: str
    decoder: Decoder
    policy: HealthPolicy = attrs.field(factory=HealthPolicy)
    # What the next session says in stream.disconnected when this one is stopped while up;
    # whoever stops the session (a reload) sets it first.
    restart_reason: str = "session restarted"

    _frames: int = 0
    _decode_errors: int = 0
    _reconnects: int = 0
    _last_frame: float | None = None
    # The connection, across sessions.
    _up_since: float | None = None
    _announced_down: bool = False
    _lost_at: float | None = None
    _offline: OfflineWindow | None = None
    # Wall time of the last frame received on this connection (of the connect before any): a
    # lost connection may have delivered nothing for a while, e.g. half-open for up to
    # ping_interval + ping_timeout before the heartbeat noticed, so the gap starts here.
    _last_heard: datetime | None = None
    _stopped_while_up: bool = False
    # This connection only.
    _login_until: float = 0.0
    _snapshot: SnapshotReader | None = None
    _gap_until: datetime | None = None  # the reconnect, while the gap awaits the snapshot
    _gap_due: float | None = None
    _last_seen: dict[str, float] = attrs.field(factory=dict)
    _armed: set[str] = attrs.field(factory=set)

    @classmethod
    def for_account(cls, settings: AccountSettings, decoder: Decoder | None = None) -> StreamHealth:
        """A fresh machine for ``settings`` (with a fresh decoder unless one is given);
        ``ValueError`` for an unknown exchange or stream."""
        if decoder is None:
            decoder = decoder_for(settings.exchange, settings.name)
        return cls(settings.name, decoder, HealthPolicy.for_account(settings, decoder))

    @property
    def exchange(self) -> str:
        return self.decoder.exchange

    @property
    def connected(self) -> bool:
        return self._up_since is not None

    def statistics(self) -> HealthStatistics:
        return HealthStatistics(
            frames=self._frames,
            decode_errors=self._decode_errors,
            reconnects=self._reconnects,
            connected=self.connected,
            connected_since=self._up_since,
            last_frame=self._last_frame,
        )

    def carry_counts_from(self, other: StreamHealth) -> None:
        """Keep ``other``'s counters (the account changed exchange: a new machine, the same
        account to metrics)."""
        self._frames, self._decode_errors = other._frames, other._decode_errors
        self._reconnects, self._last_frame = other._reconnects, other._last_frame

    # -- the session's life -------------------------------------------------------------------

    def session_started(self, *, wall: datetime) -> list[Output]:
        """A session of the account starts: a loss its predecessor left is announced now."""
        if not self._stopped_while_up:
            return []
        self._stopped_while_up = False
        reason = self.restart_reason
        return [
            Log(WARNING, "stream.disconnected account=%s reason=%s", (self.account, reason)),
            *self._announce(reason, wall),
        ]

    def stopped(self, *, now: float, wall: datetime) -> list[Output]:
        """The session stopped (cancelled, or crashed). A connection that was up is lost now,
        announced by the next session (``session_started``), or never if none comes (the
        account was removed, alertd shut down)."""
        if not self.connected:
            return []
        self._lose(now, wall)
        self._stopped_while_up = True
        return [Record("disconnected", stopped=True)]

    def retrying(self) -> None:
        """The session waited out its backoff and tries again."""
        self._reconnects += 1

    # -- a connection -------------------------------------------------------------------------

    def login_sent(self, *, now: float) -> None:
        """The login frame went out: frames within ``login_timeout`` may answer it."""
        self._login_until = now + self.policy.login_timeout

    def login_unanswered(self, *, wall: datetime) -> list[Output]:
        """No verdict on the login within ``login_timeout``; the session gives up."""
        self._login_until = 0.0
        return [self._error(f"login not answered within {self.policy.login_timeout:g}s", wall)]

    def came_up(self, *, now: float, wall: datetime) -> list[Output]:
        """Handshake, login and subscribe are done."""
        self._up_since, self._announced_down, self._last_heard = now, False, wall
        downtime = None if self._lost_at is None else now - self._lost_at
        self._last_seen = dict.fromkeys(self.policy.budgets, now)
        self._armed = set(self.policy.budgets)
        out: list[Output] = [
            Record("connected"),
            Log(
                INFO,
                "stream.connected account=%s url=%s downtime=%s",
                (self.account, self.policy.url, "-" if downtime is None else f"{downtime:.2f}"),
            ),
            self._fact(StreamConnected, wall, downtime=downtime),
        ]
        if self._offline is not None:
            self._gap_until = wall
            if self.policy.snapshot:
                self._snapshot = SnapshotReader()
                self._gap_due = now + self.policy.snapshot_wait
            else:
                out += self._report_gap(wall)
        at = self.next_wakeup()
        if at is not None:
            out.append(Wakeup(at))
        return out

    def ended(self, reason: str, *, now: float, wall: datetime) -> list[Output]:
        """The connection, or the attempt at one, ended for ``reason``."""
        self._login_until = 0.0
        if self.connected:
            self._lose(now, wall)
            return [
                Log(WARNING, "stream.disconnected account=%s reason=%s", (self.account, reason)),
                *self._announce(reason, wall),
            ]
        if self._announced_down:
            return [Log(INFO, "stream.connect_failed account=%s reason=%s", (self.account, reason))]
        return [
            Log(WARNING, "stream.connect_failed account=%s reason=%s", (self.account, reason)),
            *self._announce(reason, wall),
        ]

    def frame(self, frame: str | bytes, *, now: float, wall: datetime) -> list[Output]:
        """A frame received at ``now``: a login reply, or events (those the account keeps)."""
        self._frames += 1
        self._last_frame, self._last_heard = now, wall
        if now < self._login_until and self.policy.login is not None:
            reply = self.policy.login.classify(frame)
            if reply == "rejected":
                self._login_until = 0.0
                error = self._error("login rejected by the server", wall, excerpt(frame))
                return [error, LoginAnswered("rejected")]
            if reply == "accepted":
                self._login_until = 0.0
                return [
                    Log(INFO, "stream.login_ok account=%s", (self.account,)),
                    LoginAnswered(reply),
                ]
        snapshot = self._snapshot
        if snapshot is not None:
            snapshot.feed(frame)
        out: list[Output] = []
        try:
            events = self.decoder.decode(frame, wall)
        except ProtocolError as e:
            self._decode_errors += 1
            out.append(
                Log(
                    WARNING,
                    "stream.bad_frame account=%s reason=%s excerpt=%s",
                    (self.account, e.reason, e.excerpt),
                )
            )
            # bounded: a garbage flood could make many of these
            out.append(self._error(e.reason, wall, e.excerpt, bounded=True))
        else:
            stream_for, watched = self.decoder.stream_for, self.policy.watched
            for event in events:
                stream = stream_for(event)
                if not keeps(watched, stream):
                    continue
                if stream is None:
                    out.append(Emit(event, CONNECTION, True))
                    continue
                if stream in self._last_seen and self.connected:
                    self._seen(stream, now, out)
                out.append(Emit(event, stream, True))
        if snapshot is not None and snapshot.done and self._gap_due is not None:
            out += self._report_gap(wall)
        return out

    def frame_too_big(self, limit: int, *, wall: datetime) -> list[Output]:
        """trio-websocket closed the connection with 1009 on a frame over ``limit`` bytes."""
        self._decode_errors += 1
        message = (
            f"frame larger than max_message_size ({limit} bytes);"
            " trio-websocket closed the connection with 1009, reconnecting"
        )
        return [
            Log(WARNING, "stream.oversize account=%s limit=%d", (self.account, limit)),
            self._error(message, wall),
        ]

    def error(self, reason: str, *, wall: datetime) -> list[Output]:
        """A ``stream.error`` about the connection (e.g. auth templates that cannot render)."""
        return [self._error(reason, wall)]

    # -- time ---------------------------------------------------------------------------------

    def next_wakeup(self) -> float | None:
        """The trio time of the next deadline (a stream going stale, the snapshot wait)."""
        if not self.connected:
            return None
        budgets = self.policy.budgets
        times = [self._last_seen[s] + budgets[s] for s in self._armed]
        if self._gap_due is not None:
            times.append(self._gap_due)
        return min(times, default=None)

    def tick(self, *, now: float, wall: datetime) -> list[Output]:
        """Time is ``now``: report what is due (stale streams, a gap whose snapshot is late)."""
        if not self.connected:
            return []
        out: list[Output] = []
        if self._gap_due is not None and now >= self._gap_due:
            out += self._report_gap(wall)
        for stream in sorted(self._armed):
            silent = now - self._last_seen[stream]
            if silent >= self.policy.budgets[stream]:
                self._armed.discard(stream)
                out.append(
                    Log(
                        WARNING,
                        "stream.stale account=%s stream=%s silent_for=%.1f",
                        (self.account, stream, silent),
                    )
                )
                out.append(self._fact(StreamStale, wall, stream=stream, silent_for=silent))
        return out

    # -- replay -------------------------------------------------------------------------------

    def replay(self, record: CaptureRecord) -> list[Output]:
        """One capture record, on the capture's clock (``ts`` is both ``now`` and ``wall``).
        Call ``tick`` first for every ``next_wakeup`` before ``ts``.

        A capture holds no connection attempts, so the login window is opened the way the
        session opens it: every login reply arrives before the ``connected`` that follows it
        (the session waits for it), so while down, frames may answer a login."""
        now, wall = record.ts, utc_from_timestamp(record.ts)
        login = self.policy.login
        if record.frame is not None:
            if login is not None and not self.connected and now >= self._login_until:
                self.login_sent(now=now)
            return self.frame(record.frame, now=now, wall=wall)
        if record.stream_event == "connected":
            out = self.session_started(wall=wall)
            out += self.came_up(now=now, wall=wall)
            if login is not None and not login.accept_when:
                self.login_sent(now=now)  # nothing waited for the login: a reply may follow
            return out
        if record.stopped:
            return self.stopped(now=now, wall=wall)
        reason = record.reason or RECORDED_DISCONNECT
        if self._stopped_while_up:
            self.restart_reason = reason
            return self.session_started(wall=wall)
        return self.ended(reason, now=now, wall=wall)

    # -- helpers ------------------------------------------------------------------------------

    def _lose(self, now: float, wall: datetime) -> None:
        self._up_since, self._lost_at = None, now
        if self._offline is None:
            since = self._last_heard or wall
            self._offline = OfflineWindow(since=since, before=dict(self.decoder.balances))
        self._snapshot, self._gap_due, self._gap_until = None, None, None
        self._armed = set()

    def _announce(self, reason: str, wall: datetime) -> list[Output]:
        self._announced_down = True
        return [
            Record("disconnected", reason=reason),
            self._fact(StreamDisconnected, wall, reason=reason),
        ]

    def _report_gap(self, wall: datetime) -> list[Output]:
        gap, until = self._offline, self._gap_until or wall
        assert gap is not None
        evidence: tuple[BalanceEvidence, ...] = ()
        if self._snapshot is not None:
            evidence = tuple(
                BalanceEvidence(currency=c, before=gap.before.get(c), after=after)
                for c, after in sorted(self._snapshot.balances.items())
                if gap.before.get(c) != after
            )
        self._offline, self._snapshot, self._gap_due, self._gap_until = None, None, None, None
        return [
            Log(
                WARNING,
                "stream.gap account=%s why=offline since=%s until=%s evidence=%d",
                (self.account, gap.since.isoformat(), until.isoformat(), len(evidence)),
            ),
            self._fact(
                StreamGap, wall, since=gap.since, until=until, why="offline", evidence=evidence
            ),
        ]

    def _seen(self, stream: str, now: float, out: list[Output]) -> None:
        self._last_seen[stream] = now
        if stream not in self._armed:
            self._armed.add(stream)
            out.append(Wakeup(now + self.policy.budgets[stream]))

    def _fact(
        self, cls: type[Event], wall: datetime, *, bounded: bool = False, **fields: Any
    ) -> Emit:
        stream = fields.pop("stream", CONNECTION)
        event = stream_fact(
            cls, exchange=self.exchange, account=self.account, at=wall, stream=stream, **fields
        )
        return Emit(event, stream, bounded)

    def _error(
        self, reason: str, wall: datetime, excerpt_text: str = "", *, bounded: bool = False
    ) -> Emit:
        return self._fact(StreamError, wall, bounded=bounded, reason=reason, excerpt=excerpt_text)
