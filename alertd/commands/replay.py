"""``alertd replay -c CONFIG CAPTURE [--events] [--state-dir DIR]``: the daemon, run over a
capture on a virtual clock; prints every notification that would be sent, with its channel.

It is the daemon: the same ``Daemon`` with every stage of ``alertd run`` (stream health and
the stream filter, the engine, dispatch with grouping, silences, quiet hours and inhibition,
rendering and splitting, delivery), with two parts swapped. The websocket sources become the
capture (``daemon.capture_intake``: each record at its own time, through the account's
stream health machine), and the notification services a notifier that prints instead of
sending (nothing leaves the machine). The trio clock is the capture's (``virtual_clock``):
it starts at the first record's time and jumps ahead whenever every stage waits, so hours of
capture take seconds, and wall time (quiet hours, silences, message times) is capture time.

After the last record the daemon stops as on SIGTERM: timers due up to that moment fire,
later ones would need time the capture does not have; held groups go out, and delivery drains
(``DRAIN``: long enough for quiet hours to end). Rule state starts empty in a temporary state
directory; ``--state-dir`` copies the silences of that directory's database first (a silence
counts where its window covers the capture's time). Output is in send order, by virtual
time (at one moment: events first, then channels by name), the same every run.
"""

from __future__ import annotations

import argparse
import json
import math
import sqlite3
import sys
import tempfile
from collections.abc import Iterator
from datetime import datetime
from decimal import Decimal
from functools import partial
from pathlib import Path
from typing import Any, TextIO

import attrs
import trio

from alertd import clock
from alertd.check import load_config
from alertd.config.errors import ConfigError
from alertd.config.model import Config, Secret
from alertd.daemon.app import Daemon
from alertd.daemon.capture_intake import CaptureIntake
from alertd.daemon.reload import failure_reason
from alertd.daemon.sdnotify import SdNotifier
from alertd.daemon.virtual_clock import VirtualClock
from alertd.events import Event
from alertd.notify.printing import ChannelUrl, PrintingNotifier, SentNotification, format_time
from alertd.sources.capture import CaptureError, CaptureRecord, read_capture
from alertd.store.database import connect, db_path
from alertd.store.silences import add_silence, list_silences

DRAIN = 2 * 86_400.0  # virtual seconds delivery may take after the capture (quiet hours)


class ReplayError(Exception):
    """The capture cannot be replayed with this config; the message says where and why."""


# -- output -------------------------------------------------------------------------------------


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


@attrs.define
class Transcript:
    """Events (with ``--events``) and notifications as they happen, in virtual-time order."""

    events: bool
    # (time, 0 for an event / 1 for a notification, channel, URL index, arrival, text)
    _entries: list[tuple[float, int, str, int, int, str]] = attrs.field(factory=list)
    notifications: list[SentNotification] = attrs.field(factory=list)

    def event(self, event: Event) -> None:
        if self.events:
            now, seq = trio.current_time(), len(self._entries)
            self._entries.append((now, 0, "", 0, seq, event_json(event)))

    def notification(self, sent: SentNotification) -> None:
        self.notifications.append(sent)
        to, seq = sent.to, len(self._entries)
        self._entries.append((sent.at, 1, to.channel, to.index, seq, sent.format()))

    def lines(self) -> list[str]:
        # Delivery serves each URL in a task of its own: at one moment their order is the
        # scheduler's, so channels are put in name order (each one's messages keep theirs).
        return [entry[-1] for entry in sorted(self._entries)]


def replay_config(config: Config) -> tuple[Config, dict[str, ChannelUrl]]:
    """``config`` for replay: every channel URL replaced by a marker naming its channel and
    index (so each send is known by where it goes, whatever URLs channels share), no metrics
    port, no recording."""
    urls: dict[str, ChannelUrl] = {}
    channels = {}
    for name, settings in config.channels.items():
        markers = []
        for index, url in enumerate(settings.urls):
            marker = f"replay://{len(urls)}"
            urls[marker] = ChannelUrl(channel=name, index=index, url=url)
            markers.append(Secret(marker, source=f"replay:{name}"))
        channels[name] = attrs.evolve(settings, urls=markers)
    daemon = attrs.evolve(config.daemon, metrics_listen=None, record_dir=None)
    return attrs.evolve(config, channels=channels, daemon=daemon), urls


# -- the capture --------------------------------------------------------------------------------


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


def check_capture(path: str | Path, config: Config) -> float:
    """Read the whole capture once before replaying it: the first record's time, or
    ``ReplayError`` for a bad line, a record of an account the config lacks, or no record."""
    names = [a.name for a in config.accounts]
    first = math.nan
    for record in _read(path):
        if record.account not in names:
            known = ", ".join(names) or "none"
            raise ReplayError(
                f"{path}:{record.line}: account {record.account!r} is not in the config "
                f"(accounts: {known})"
            )
        if math.isnan(first):
            first = record.ts
    if math.isnan(first):
        raise ReplayError(f"{path}: the capture holds no records (nothing to replay)")
    return first


def copy_silences(source_dir: Path, into: Path) -> int:
    """The silences of the state database in ``source_dir``, copied (all, ended or not: the
    capture's time decides) into a fresh one in ``into``; how many. Reads without writing."""
    source = db_path(source_dir)
    if not source.is_file():
        raise ReplayError(f"{source_dir}: no state database there ({source.name} is missing)")
    try:
        with sqlite3.connect(f"file:{source}?mode=ro", uri=True) as conn:
            silences = list_silences(conn, now=-math.inf, include_expired=True)
    except sqlite3.Error as exc:
        raise ReplayError(f"{source}: cannot read its silences: {exc}") from None
    conn = connect(db_path(into))
    try:
        with conn:
            for silence in silences:
                copied = attrs.asdict(silence, recurse=False)
                del copied["id"]  # a new one is drawn
                add_silence(conn, **copied)
    finally:
        conn.close()
    return len(silences)


# -- the replay ---------------------------------------------------------------------------------


async def _run(config: Config, capture: Path, state_dir: Path, transcript: Transcript) -> None:
    clock.anchor_wall(trio.current_time())  # wall time is capture time
    config, urls = replay_config(config)
    daemon: Daemon

    def intake(cfg: Config, send: trio.MemorySendChannel[Event], _: object) -> CaptureIntake:
        return CaptureIntake(
            accounts=cfg.accounts,
            records=_read(capture),
            send=send,
            on_end=daemon.request_stop,
            on_event=transcript.event,
        )

    daemon = Daemon(
        config=config,
        state_dir=state_dir,
        notifier=PrintingNotifier(transcript.notification, urls),
        intake=intake,
        drain_timeout=DRAIN,
        housekeeping=False,
        sd=SdNotifier.from_env({}),
        handle_signals=False,
    )
    await daemon.run()


def replay(
    config: Config,
    capture_path: str | Path,
    *,
    events: bool,
    out: TextIO,
    state_dir: str | Path | None = None,
) -> int:
    """Replay ``capture_path`` against ``config``, writing the transcript to ``out``; returns
    how many notifications would be sent. ``ReplayError`` for a capture that does not fit
    (bad line, unknown account, empty) or a ``state_dir`` without a database."""
    transcript = transcript_of(config, capture_path, events=events, state_dir=state_dir)
    for line in transcript.lines():
        print(line, file=out)
    return len(transcript.notifications)


def transcript_of(
    config: Config,
    capture_path: str | Path,
    *,
    events: bool = False,
    state_dir: str | Path | None = None,
) -> Transcript:
    """The ``Transcript`` of a replay (see ``replay``; ``replay_diff`` compares two)."""
    capture = Path(capture_path)
    first = check_capture(capture, config)
    transcript = Transcript(events=events)
    with tempfile.TemporaryDirectory(prefix="alertd-replay-") as tmp:
        if state_dir is not None:
            copy_silences(Path(state_dir), Path(tmp))
        try:
            trio.run(
                partial(_run, config, capture, Path(tmp), transcript), clock=VirtualClock(first)
            )
        except BaseExceptionGroup as group:
            # The capture changed after check_capture read it: its error, not the group.
            found: BaseException | None = group.subgroup(ReplayError)
            while isinstance(found, BaseExceptionGroup):
                found = found.exceptions[0]
            if found is None:
                raise
            raise found from None
    return transcript


def main(args: argparse.Namespace) -> int:
    """Exit 0 after a full replay; 1 with a message on stderr when config or capture is bad."""
    try:
        config = load_config(args.config)
    except ConfigError as exc:
        print(exc.format(), file=sys.stderr)
        return 1
    except Exception as exc:  # a file the parser cannot take
        print(f"alertd replay: {failure_reason(exc, args.config)}", file=sys.stderr)
        return 1
    try:
        replay(
            config,
            args.capture,
            events=args.events,
            out=sys.stdout,
            state_dir=getattr(args, "state_dir", None),
        )
    except ReplayError as exc:
        print(f"alertd replay: {exc}", file=sys.stderr)
        return 1
    return 0
