"""Stream health: one account's connection policy as a sans-IO state machine.

Facts go in (an attempt ended, the connection is up, a frame arrived, the session stopped,
time passed) with the times they happened: ``now`` (trio seconds, for deadlines) and ``wall``
(UTC, for what people read). What follows comes out as ``outputs``, in order; nothing here
does I/O or reads a clock. The session is the I/O around it; ``alertd replay`` feeds it
capture records on the capture's clock (``StreamHealth.replay``): one place decides for both.

- A frame is decoded by the account's decoder and its events pass the stream filter
  (``streams.keeps``); one that cannot be read is a ``stream.error`` and the stream goes on.
  Within the login window (``login_timeout`` from sending the login) a frame that answers the
  login is not decoded; a rejection is a ``stream.error`` with an excerpt.
- ``stream.disconnected`` (with the reason) once when a connection that was up is lost, or
  when the very first attempt fails; failed retries stay quiet (logged at info) until the
  connection is back. A session stopped while connected (a reload, a crash) leaves the loss
  here, for the next session to announce with ``restart_reason``.
- ``stream.connected`` (with ``downtime``) when handshake, login and subscribe are done.
- ``stream.gap`` (why ``offline``; since the last frame received before the loss, or the
  connect; until the reconnect) after a reconnect. On Piexgo with ``pinfo`` the balance
  snapshot that follows the subscribe is awaited first (up to ``snapshot_wait``): balances
  that differ from the last seen before the loss are its ``evidence``. A gap not yet
  reported when the connection falls again widens into the next one. Then, snapshot or not,
  a ``stream.gap.evidence`` per currency whose first balance after it differs from before.
- alertd's own downtime (``alertd_was_down``, from the last run's stream marks) is a gap
  from its last healthy moment, why ``alertd stopped``/``crashed``; ``last_healthy`` marks.
- ``stream.stale`` once per silence of a stream with a budget, while connected; the next
  frame on that stream re-arms it.

A ``StreamHealth`` outlives the sessions of its account: Sources keeps one per account (with
its decoder, which remembers orders and balances) across reloads and crashes.
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
    BalanceChanged,
    Event,
    StreamConnected,
    StreamDisconnected,
    StreamError,
    StreamStale,
    utc_from_timestamp,
)
from alertd.protocols import Decoder, ProtocolError, decoder_for, excerpt
from alertd.sources.outputs import (
    Emit,
    HealthCounts,
    HealthStatistics,
    Log,
    LoginAnswered,
    Output,
    Record,
    Wakeup,
)
from alertd.sources.snapshot import EvidenceWatch, OfflineWindow, SnapshotReader
from alertd.sources.streams import CONNECTION, HealthPolicy, keeps, stream_fact

if TYPE_CHECKING:
    from alertd.sources.capture import CaptureRecord

WARNING, INFO = logging.WARNING, logging.INFO
DISCONNECTED = "stream.disconnected account=%s reason=%s"
CONNECT_FAILED = "stream.connect_failed account=%s reason=%s"
BAD_FRAME = "stream.bad_frame account=%s reason=%s excerpt=%s"
STALE = "stream.stale account=%s stream=%s silent_for=%.1f"
RECORDED_DISCONNECT = "recorded disconnect"  # replay's reason when a capture line gives none


# -- the machine --------------------------------------------------------------------------------


@attrs.define(eq=False)
class StreamHealth:
    """One account's stream health (see the module docstring); build it with ``for_account``.

    Inputs return their outputs. ``next_wakeup`` is when ``tick`` wants calling next; an
    input that brings it nearer also returns a ``Wakeup``."""

    account: str
    decoder: Decoder
    policy: HealthPolicy = attrs.field(factory=HealthPolicy)
    # The next session's stream.disconnected reason if this one stops while up (reload sets it)
    restart_reason: str = "session restarted"

    _counts: HealthCounts = attrs.field(factory=HealthCounts)
    _last_frame: float | None = None
    # The connection, across sessions.
    _up_since: float | None = None
    _announced_down: bool = False
    _lost_at: float | None = None
    _offline: OfflineWindow | None = None
    # Wall time of the last frame on this connection (or its connect): a lost connection may
    # have been half-open for up to ping_interval + ping_timeout, so the gap starts here.
    _last_heard: datetime | None = None
    _stopped_at: datetime | None = None  # a session stopped while connected, not announced
    # This connection only.
    _login_until: float = 0.0
    _snapshot: SnapshotReader | None = None
    _watch: EvidenceWatch | None = None  # the last offline gap's first balances since
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
            **attrs.asdict(self._counts, recurse=False),
            connected=self.connected,
            connected_since=self._up_since,
            last_frame=self._last_frame,
        )

    def carry_counts_from(self, other: StreamHealth) -> None:
        """Keep ``other``'s counters (the account changed exchange: a new machine, the same
        account to metrics)."""
        self._counts, self._last_frame = attrs.evolve(other._counts), other._last_frame

    # -- the session's life -------------------------------------------------------------------

    def session_started(self, *, wall: datetime) -> list[Output]:
        """A session of the account starts: a loss its predecessor left is announced now."""
        if self._stopped_at is None:
            return []
        self._stopped_at = None
        return self._announce(DISCONNECTED, self.restart_reason, wall)

    def stopped(self, *, now: float, wall: datetime) -> list[Output]:
        """The session stopped (cancelled, or crashed). A connection that was up is lost now,
        announced by the next session (``session_started``), or never if none comes (the
        account was removed, alertd shut down)."""
        if not self.connected:
            return []
        self._lose(now, wall)
        self._stopped_at = wall
        return [Record("disconnected", stopped=True)]

    def alertd_was_down(
        self, *, since: datetime, stopped: bool, balances: Mapping[str, Decimal], wall: datetime
    ) -> None:
        """alertd watched nothing from ``since`` (the last run's mark) until it started at
        ``wall`` (``stopped``, or crashed): the first connect reports it as a gap, and
        ``balances`` (seen then) are the evidence's and the decoder's memory of before."""
        if self._offline is not None or self.connected:
            return
        for currency, balance in balances.items():
            self.decoder.balances.setdefault(currency, balance)
        why = "alertd stopped" if stopped else "alertd crashed"
        down = max(0.0, (wall - since).total_seconds())
        self._offline = OfflineWindow(since=since, before=dict(balances), why=why, down_for=down)

    def connected_with(self, balances: Mapping[str, Decimal]) -> bool:
        """Connected, with these balances: a live mark of them still says it all."""
        return self.connected and self.decoder.balances == balances

    def last_healthy(self, wall: datetime) -> tuple[datetime, Mapping[str, Decimal]] | None:
        """When the account was last known healthy (for the stream marks), with its balances
        then: ``wall`` while connected, the moment a session was stopped while connected, or
        the start of an outage not yet reported; None if none."""
        if self.connected:
            return wall, dict(self.decoder.balances)
        if self._stopped_at is not None:
            return self._stopped_at, dict(self.decoder.balances)
        gap = self._offline
        return None if gap is None else (gap.since, dict(gap.before))

    def retrying(self) -> None:
        """The session waited out its backoff and tries again."""
        self._counts.reconnects += 1

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
            self._log(
                INFO,
                "stream.connected account=%s url=%s downtime=%s",
                self.policy.url,
                "-" if downtime is None else f"{downtime:.2f}",
            ),
            self._fact(StreamConnected, wall, downtime=downtime),
        ]
        if self._offline is not None:
            self._watch = EvidenceWatch(self.exchange, self.account, self._offline, until=wall)
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
            return self._announce(DISCONNECTED, reason, wall)
        if self._announced_down:
            return [self._log(INFO, CONNECT_FAILED, reason)]
        return self._announce(CONNECT_FAILED, reason, wall)

    def frame(self, frame: str | bytes, *, now: float, wall: datetime) -> list[Output]:
        """A frame received at ``now``: a login reply, or events (those the account keeps)."""
        self._counts.frames += 1
        self._last_frame, self._last_heard = now, wall
        if now < self._login_until and self.policy.login is not None:
            reply = self.policy.login.classify(frame)
            if reply == "rejected":
                self._login_until = 0.0
                error = self._error("login rejected by the server", wall, excerpt(frame))
                return [error, LoginAnswered("rejected")]
            if reply == "accepted":
                self._login_until = 0.0
                return [self._log(INFO, "stream.login_ok account=%s"), LoginAnswered(reply)]
        snapshot = self._snapshot
        if snapshot is not None:
            snapshot.feed(frame)
        out: list[Output] = []
        try:
            events = self.decoder.decode(frame, wall)
        except ProtocolError as e:
            self._counts.decode_errors += 1
            out.append(self._log(WARNING, BAD_FRAME, e.reason, e.excerpt))
            # bounded: a garbage flood could make many of these
            out.append(self._error(e.reason, wall, e.excerpt, bounded=True))
        else:
            stream_for, watched, watch = self.decoder.stream_for, self.policy.watched, self._watch
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
                if watch is not None and isinstance(event, BalanceChanged):
                    out += watch.balance(event, wall)
        if snapshot is not None and snapshot.done and self._gap_due is not None:
            out += self._report_gap(wall)
        return out

    def frame_too_big(self, limit: int, *, wall: datetime) -> list[Output]:
        """trio-websocket closed the connection with 1009 on a frame over ``limit`` bytes."""
        self._counts.decode_errors += 1
        message = (
            f"frame larger than max_message_size ({limit} bytes);"
            " trio-websocket closed the connection with 1009, reconnecting"
        )
        return [
            self._log(WARNING, "stream.oversize account=%s limit=%d", limit),
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
                out.append(self._log(WARNING, STALE, stream, silent))
                out.append(self._fact(StreamStale, wall, stream=stream, silent_for=silent))
        return out

    # -- replay -------------------------------------------------------------------------------

    def replay(self, record: CaptureRecord) -> list[Output]:
        """One capture record, on the capture's clock (``ts`` is ``now`` and ``wall``); call
        ``tick`` first for every ``next_wakeup`` before ``ts``. A capture holds no attempts:
        a login reply comes before the ``connected`` after it (the session waits for it), so
        while down, frames may answer a login."""
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
        if self._stopped_at is not None:
            self.restart_reason = reason
            return self.session_started(wall=wall)
        return self.ended(reason, now=now, wall=wall)

    # -- helpers ------------------------------------------------------------------------------

    def _lose(self, now: float, wall: datetime) -> None:
        self._up_since, self._lost_at = None, now
        if self._offline is None:
            since = self._last_heard or wall
            self._offline = OfflineWindow(since=since, before=dict(self.decoder.balances))
        self._snapshot, self._gap_due, self._watch = None, None, None
        self._armed = set()

    def _log(self, level: int, message: str, *args: Any) -> Log:
        return Log(level, message, (self.account, *args))

    def _announce(self, message: str, reason: str, wall: datetime) -> list[Output]:
        """``stream.disconnected``, logged as ``message``."""
        self._announced_down = True
        return [
            self._log(WARNING, message, reason),
            Record("disconnected", reason=reason),
            self._fact(StreamDisconnected, wall, reason=reason),
        ]

    def _report_gap(self, wall: datetime) -> list[Output]:
        assert self._watch is not None
        snapshot, self._offline, self._snapshot, self._gap_due = self._snapshot, None, None, None
        return self._watch.report(snapshot, wall)

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
