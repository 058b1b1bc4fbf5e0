"""The capture format of DESIGN.md: what ``alertd run --record DIR`` writes and replay reads.

JSON Lines, one object a line::

    {"ts": <unix seconds, float>, "account": "<name>", "frame": "<raw frame text>"}
    {"ts": <unix seconds, float>, "account": "<name>", "stream_event": "connected"}
    {"ts": ..., "account": "<name>", "stream_event": "disconnected", "reason": "<why>"}
    {"ts": ..., "account": "<name>", "stream_event": "disconnected", "stopped": true}

A ``disconnected`` line is written whenever ``stream.disconnected`` is announced, with its
``reason``; ``stopped`` marks alertd ceasing to watch a connection that was up (a reload, a
crash, shutdown), which is an outage only once a next session announces it in a line of its
own. Both keys are optional (captures written before them read as before), so replay gives
the reasons and only the outages the daemon reported.

Frames are recorded as the session received them, with every known secret masked (an
exchange that echoes the API key must not put it into a file: ``sources/redact``).

``Recorder`` never blocks a reader: ``record_*`` only append to a list in memory, and the
recorder's own task writes the lines out in a worker thread every ``flush_interval`` seconds
(or sooner when many are waiting). One file per run, named after the UTC start time.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import IO

import attrs
import trio

from alertd.sources.streams import STREAM_FACTS, StreamFact

log = logging.getLogger(__name__)

FLUSH_INTERVAL = 1.0  # seconds: a crash loses at most this much capture
FLUSH_LINES = 5_000  # write sooner when this many lines wait, to keep memory flat in a flood
MAX_PENDING_LINES = 500_000  # beyond this the disk is not keeping up: drop and say so
CLOSE_TIMEOUT = 5.0  # seconds the final flush may take on shutdown
MAX_TS = 1e11  # unix seconds, year 5138: beyond any real capture, within what datetime takes


class CaptureError(ValueError):
    """A capture file line that cannot be read; the message names ``file:line``."""


@attrs.frozen(kw_only=True)
class CaptureRecord:
    """One capture line: either a received ``frame`` or a ``stream_event`` fact."""

    ts: float
    account: str
    frame: str | None = None
    stream_event: StreamFact | None = None
    reason: str | None = None  # a disconnected line's reason, where the capture has one
    stopped: bool = False  # a disconnected line for a session stopped while up
    line: int = 0  # where it was in the file, for messages


def capture_path(directory: Path, started: datetime) -> Path:
    """The file one run writes to, e.g. ``DIR/capture-20260101T120000Z.jsonl``."""
    return directory / f"capture-{started.astimezone(UTC):%Y%m%dT%H%M%SZ}.jsonl"


def frame_line(account: str, frame: str | bytes, ts: float) -> str:
    text = frame.decode("utf-8", "replace") if isinstance(frame, bytes) else frame
    return json.dumps({"ts": ts, "account": account, "frame": text}, ensure_ascii=False) + "\n"


def fact_line(
    account: str,
    fact: StreamFact,
    ts: float,
    *,
    reason: str | None = None,
    stopped: bool = False,
) -> str:
    obj: dict[str, object] = {"ts": ts, "account": account, "stream_event": fact}
    if reason is not None:
        obj["reason"] = reason
    if stopped:
        obj["stopped"] = True
    return json.dumps(obj) + "\n"


@attrs.define
class Recorder:
    """Writes every received frame and connection fact of every account to one file.

    ``run`` opens the file (creating ``directory``), reports ready, then flushes regularly.
    On cancellation it writes what is still pending (bounded by ``CLOSE_TIMEOUT``) and closes
    the file. ``record_*`` may be called before ``run`` has started; lines wait in memory.
    """

    directory: Path = attrs.field(converter=Path)
    flush_interval: float = FLUSH_INTERVAL
    path: Path | None = None  # set by run()
    written: int = 0  # lines written to disk
    dropped: int = 0  # lines dropped because the disk did not keep up
    _pending: list[str] = attrs.field(factory=list)
    _wakeup: trio.Event = attrs.field(factory=trio.Event)

    def record_frame(self, account: str, frame: str | bytes, ts: float | None = None) -> None:
        """Remember a received frame; ``ts`` defaults to now (wall clock)."""
        self._add(frame_line(account, frame, time.time() if ts is None else ts))

    def record_fact(
        self,
        account: str,
        fact: StreamFact,
        ts: float | None = None,
        *,
        reason: str | None = None,
        stopped: bool = False,
    ) -> None:
        """Remember that ``account``'s stream connected or disconnected (see the module
        docstring for ``reason`` and ``stopped``)."""
        line = fact_line(
            account, fact, time.time() if ts is None else ts, reason=reason, stopped=stopped
        )
        self._add(line)

    def _add(self, line: str) -> None:
        if len(self._pending) >= MAX_PENDING_LINES:
            if self.dropped == 0:
                log.warning("capture.behind path=%s pending=%d", self.path, len(self._pending))
            self.dropped += 1
            return
        self._pending.append(line)
        if len(self._pending) >= FLUSH_LINES:
            self._wakeup.set()

    async def run(self, *, task_status: trio.TaskStatus[Path] = trio.TASK_STATUS_IGNORED) -> None:
        path = capture_path(self.directory, datetime.now(UTC))
        file = await trio.to_thread.run_sync(_open, path)
        self.path = path
        log.info("capture.open path=%s", path)
        task_status.started(path)
        try:
            while True:
                with trio.move_on_after(self.flush_interval):
                    await self._wakeup.wait()
                self._wakeup = trio.Event()
                await self._flush(file, abandon_on_cancel=False)
        finally:
            with trio.move_on_after(CLOSE_TIMEOUT, shield=True) as cs:
                await self._flush(file, abandon_on_cancel=True)
            if cs.cancelled_caught:
                log.error("capture.close_timeout path=%s lost=%d", path, len(self._pending))
            # Closing after a timed-out write could race the worker thread still writing;
            # the file object is then left to the garbage collector.
            if not cs.cancelled_caught:
                file.close()
            log.info("capture.close path=%s lines=%d", path, self.written)

    async def _flush(self, file: IO[str], *, abandon_on_cancel: bool) -> None:
        """Write pending lines in a worker thread. A regular flush is not abandoned on
        cancellation (a second write must not interleave with it); the final one may be, so
        a stuck disk cannot hold shutdown past ``CLOSE_TIMEOUT``."""
        if not self._pending:
            return
        lines, self._pending = self._pending, []
        await trio.to_thread.run_sync(_write, file, lines, abandon_on_cancel=abandon_on_cancel)
        self.written += len(lines)


def _open(path: Path) -> IO[str]:
    path.parent.mkdir(parents=True, exist_ok=True)
    return path.open("a", encoding="utf-8")


def _write(file: IO[str], lines: list[str]) -> None:
    file.writelines(lines)
    file.flush()


def read_capture(path: str | Path) -> Iterator[CaptureRecord]:
    """The records of a capture file in order. Blank lines are skipped; anything else that is
    not a capture record raises ``CaptureError`` naming ``file:line`` and what is wrong."""
    with Path(path).open(encoding="utf-8") as file:
        for number, text in enumerate(file, start=1):
            if text.strip():
                yield parse_line(text, where=f"{path}:{number}", line=number)


def parse_line(text: str, *, where: str, line: int = 0) -> CaptureRecord:
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as e:
        raise CaptureError(f"{where}: not JSON ({e.msg} at column {e.colno})") from None
    if not isinstance(obj, dict):
        raise CaptureError(f"{where}: expected a JSON object, got {type(obj).__name__}")
    ts = obj.get("ts")
    # json accepts NaN, Infinity and huge numbers; none of them is a time replay can use
    # (datetime.fromtimestamp raises on them), so they are refused here, with the line.
    if (
        isinstance(ts, bool)
        or not isinstance(ts, int | float)
        or not (math.isfinite(ts) and 0 <= ts < MAX_TS)
    ):
        raise CaptureError(
            f'{where}: "ts" must be unix seconds (a number from 0 to {MAX_TS:.0e}), got {ts!r}'
        )
    account = obj.get("account")
    if not isinstance(account, str) or not account:
        raise CaptureError(f'{where}: "account" must be a non-empty string, got {account!r}')
    frame = obj.get("frame")
    fact = obj.get("stream_event")
    if (frame is None) == (fact is None):
        raise CaptureError(f'{where}: expected exactly one of "frame" and "stream_event"')
    if frame is not None and not isinstance(frame, str):
        raise CaptureError(f'{where}: "frame" must be the raw frame text (a string)')
    if fact is not None and fact not in STREAM_FACTS:
        raise CaptureError(
            f'{where}: "stream_event" must be "connected" or "disconnected", got {fact!r}'
        )
    reason, stopped = obj.get("reason"), obj.get("stopped", False)
    if reason is not None and not isinstance(reason, str):
        raise CaptureError(f'{where}: "reason" must be a string, got {reason!r}')
    if not isinstance(stopped, bool):
        raise CaptureError(f'{where}: "stopped" must be true or false, got {stopped!r}')
    return CaptureRecord(
        ts=float(ts),
        account=account,
        frame=frame,
        stream_event=fact,
        reason=reason,
        stopped=stopped,
        line=line,
    )
