"""``alertd replay -c CONFIG CAPTURE [--events]``: a capture through decoding and the rules,
on a virtual clock taken from the capture's timestamps; prints every alert that would be
sent, with its channels, in order. Sends nothing, and gives the same output every run.

What it shows is the engine's output routed to channels (a rule's ``notify``, else
``[dispatch] default_channel``). Dispatch's grouping, throttling, quiet hours and silences
are about *when and how* a message goes out, not *whether* the rules fire, and depend on
the state of a running daemon, so replay leaves them out.

Per record, in file order: timers due before its time fire first (at their own time); a
``frame`` is decoded by the account's decoder (one per account, as in the daemon: order and
balance tracking carry over) and events of streams the account does not watch are dropped,
as sources does; a frame that cannot be read becomes a ``stream.error`` event; a
``stream_event`` becomes ``stream.connected`` / ``stream.disconnected``, and a ``connected``
after a ``disconnected`` is also a ``stream.gap`` (why ``offline``, since the last record
heard before the loss, until the reconnect; no balance evidence), as in the daemon. At the
end, timers due up to the last record's time fire; later ones would need time the capture
does not have.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, TextIO

import attrs

from alertd.check import load_config
from alertd.config.errors import ConfigError
from alertd.config.model import Config
from alertd.engine import Engine, RuleCompileError
from alertd.events import (
    Alert,
    Event,
    StreamConnected,
    StreamDisconnected,
    StreamError,
    StreamGap,
    utc_from_timestamp,
)
from alertd.protocols import Decoder, ProtocolError, decoder_for
from alertd.sources.capture import CaptureError, CaptureRecord, read_capture
from alertd.sources.session import CONNECTION  # the stream of whole-connection facts


class ReplayError(Exception):
    """The capture cannot be replayed with this config; the message says where and why."""


# -- output -------------------------------------------------------------------------------------


def format_time(moment: datetime) -> str:
    """ISO-8601 UTC with milliseconds: ``2019-06-05T11:39:36.000Z``."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _json_value(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime):
        return format_time(value)
    if isinstance(value, tuple | list):
        return [_json_value(v) for v in value]
    if attrs.has(type(value)):
        return {a.name: _json_value(getattr(value, a.name)) for a in attrs.fields(type(value))}
    return value


def event_json(event: Event) -> str:
    """One event as a JSON line: kind first, then its fields in declaration order; Decimals
    as strings (exact), times as ISO-8601 UTC; ``raw`` left out (it is the frame, which the
    capture already holds)."""
    out: dict[str, Any] = {"kind": event.kind}
    for a in attrs.fields(type(event)):
        if a.name != "raw":
            out[a.name] = _json_value(getattr(event, a.name))
    return json.dumps(out, ensure_ascii=False)


def format_alert(alert: Alert, channels: tuple[str, ...], moment: datetime) -> str:
    """A readable transcript entry: time, rule, status, severity, channels; then the title
    and the body, indented."""
    head = (
        f"{format_time(moment)} {alert.rule} {alert.status} {alert.severity}"
        f" -> {', '.join(channels) if channels else '(no channel)'}"
    )
    lines = [head, f"  title: {alert.title}"]
    lines += [f"  | {line}" for line in alert.body.splitlines() or [""]]
    return "\n".join(lines)


# -- the replay ---------------------------------------------------------------------------------


@attrs.define
class _Clock:
    """The virtual time: capture seconds stand for both the trio clock and the wall clock."""

    now: float = 0.0

    def wall(self) -> datetime:
        return utc_from_timestamp(self.now)


@attrs.define
class _Account:
    exchange: str
    decoder: Decoder
    streams: frozenset[str] | None  # normalized names; None when the decoder cannot say
    lost_at: float | None = None
    # As sources does: an offline gap starts at the last frame heard before the loss (or the
    # connect when there was none), since a connection may deliver nothing for a while
    # before its loss is noticed.
    last_heard: float | None = None
    gap_since: float | None = None


def _accounts(config: Config) -> dict[str, _Account]:
    out = {}
    for account in config.accounts:
        decoder = decoder_for(account.exchange, account.name)
        normalize: Callable[[str], str] | None = getattr(decoder, "normalize_stream", None)
        streams = (
            frozenset(normalize(s) for s in account.streams) if normalize is not None else None
        )
        out[account.name] = _Account(account.exchange, decoder, streams)
    return out


def _events(record: CaptureRecord, account: _Account, name: str) -> list[Event]:
    moment = utc_from_timestamp(record.ts)
    ex, at = account.exchange, moment
    if record.stream_event == "connected":
        lost_at, account.lost_at = account.lost_at, None
        since, account.gap_since = account.gap_since, None
        account.last_heard = record.ts
        up = StreamConnected(
            exchange=ex,
            account=name,
            time=at,
            received=at,
            stream=CONNECTION,
            downtime=None if lost_at is None else record.ts - lost_at,
        )
        if lost_at is None or since is None:
            return [up]
        # As sources does live: back after a loss, the offline window is a gap, reported
        # after the connected fact. Without balance evidence: live, that comes from the
        # snapshot frames that follow, which replay does not wait for.
        gap = StreamGap(
            exchange=ex,
            account=name,
            time=at,
            received=at,
            stream=CONNECTION,
            since=utc_from_timestamp(since),
            until=at,
            why="offline",
        )
        return [up, gap]
    if record.stream_event == "disconnected":
        account.lost_at = record.ts
        account.gap_since = record.ts if account.last_heard is None else account.last_heard
        return [
            StreamDisconnected(
                exchange=ex,
                account=name,
                time=at,
                received=at,
                stream=CONNECTION,
                reason="recorded disconnect",
            )
        ]
    assert record.frame is not None
    account.last_heard = record.ts
    try:
        events = account.decoder.decode(record.frame, moment)
    except ProtocolError as exc:
        return [
            StreamError(
                exchange=ex,
                account=name,
                time=at,
                received=at,
                stream=CONNECTION,
                reason=exc.reason,
                excerpt=exc.excerpt,
            )
        ]
    stream_for: Callable[[Event], str | None] | None = getattr(account.decoder, "stream_for", None)
    if stream_for is None or account.streams is None:
        return events
    kept = []
    for event in events:
        stream = stream_for(event)
        if stream is None or stream in account.streams:
            kept.append(event)
    return kept


def replay(
    config: Config,
    capture_path: str | Path,
    *,
    events: bool,
    out: TextIO,
    records: Iterable[CaptureRecord] | None = None,
) -> int:
    """Replay ``capture_path`` (or ``records``) against ``config``, writing the transcript to
    ``out``; returns how many alerts would be sent. ``ReplayError`` for a capture that does
    not fit (bad line, unknown account), raised when that record is reached."""
    clock = _Clock()
    try:
        engine = Engine.from_config(config, wall=clock.wall)
    except RuleCompileError as exc:
        raise ReplayError(f"rules do not compile: {exc}") from None
    accounts = _accounts(config)
    default = config.dispatch.default_channel
    sent = 0

    def emit(alerts: Iterable[Alert]) -> None:
        nonlocal sent
        for alert in alerts:
            channels = alert.channels or ((default,) if default else ())
            print(format_alert(alert, channels, alert.created), file=out)
            sent += 1

    def run_timers(until: float, *, inclusive: bool) -> None:
        while (deadline := engine.next_deadline()) is not None and (
            deadline < until or (inclusive and deadline <= until)
        ):
            clock.now = max(clock.now, deadline)
            emit(engine.advance(clock.now))

    started = False
    for record in records if records is not None else _read(capture_path):
        account = accounts.get(record.account)
        if account is None:
            known = ", ".join(accounts) or "none"
            raise ReplayError(
                f"{capture_path}:{record.line}: account {record.account!r} is not in the "
                f"config (accounts: {known})"
            )
        # a capture's clock may step back a little (records written by several tasks);
        # the virtual clock never does
        ts = max(record.ts, clock.now) if started else record.ts
        if not started:
            clock.now = ts
            engine.start(ts)
            started = True
        run_timers(ts, inclusive=False)
        clock.now = ts
        for event in _events(record, account, record.account):
            if events:
                print(event_json(event), file=out)
            emit(engine.process(event, ts))
    if started:
        run_timers(clock.now, inclusive=True)
    return sent


def _read(path: str | Path) -> Iterator[CaptureRecord]:
    """The capture's records; errors become ``ReplayError`` naming ``CAPTURE:LINE``."""
    try:
        yield from read_capture(path)
    except CaptureError as exc:
        raise ReplayError(str(exc)) from None
    except FileNotFoundError:
        raise ReplayError(f"{path}: no such capture file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ReplayError(f"{path}: cannot read: {exc}") from None


def main(args: argparse.Namespace) -> int:
    """Exit 0 after a full replay; 1 with a message on stderr when config or capture is bad."""
    try:
        config = load_config(args.config)
    except ConfigError as exc:
        print(exc.format(), file=sys.stderr)
        return 1
    try:
        replay(config, args.capture, events=args.events, out=sys.stdout)
    except ReplayError as exc:
        print(f"alertd replay: {exc}", file=sys.stderr)
        return 1
    return 0
