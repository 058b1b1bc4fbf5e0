"""The capture format of DESIGN.md: written by Recorder, read back by read_capture."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import trio

from alertd.sources.capture import CaptureError, CaptureRecord, Recorder, read_capture


async def test_recorder_writes_the_exact_capture_format(tmp_path: Path) -> None:
    """Frames and connection facts become one JSON object a line, in order, in one file."""
    recorder = Recorder(tmp_path / "cap", flush_interval=0.05)
    with trio.fail_after(5):
        async with trio.open_nursery() as nursery:
            path = await nursery.start(recorder.run)
            recorder.record_fact("main", "connected", ts=1700000000.25)
            recorder.record_frame("main", '{"topic":"pinfo","x":"é"}', ts=1700000000.5)
            recorder.record_frame("alt", b'{"b":1}', ts=1700000001.0)
            recorder.record_fact("main", "disconnected", ts=1700000002.0)
            await trio.sleep(0.2)
            # written while running, not only at shutdown
            assert len(path.read_text(encoding="utf-8").splitlines()) == 4
            nursery.cancel_scope.cancel()
    assert path.parent == tmp_path / "cap"
    assert path.name.startswith("capture-") and path.name.endswith("Z.jsonl")
    lines = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    assert lines == [
        {"ts": 1700000000.25, "account": "main", "stream_event": "connected"},
        {"ts": 1700000000.5, "account": "main", "frame": '{"topic":"pinfo","x":"é"}'},
        {"ts": 1700000001.0, "account": "alt", "frame": '{"b":1}'},
        {"ts": 1700000002.0, "account": "main", "stream_event": "disconnected"},
    ]
    assert recorder.written == 4


async def test_recorder_flushes_pending_lines_on_cancellation(tmp_path: Path) -> None:
    """Lines recorded just before shutdown are on disk once run() returns."""
    recorder = Recorder(tmp_path, flush_interval=3600)
    with trio.fail_after(5):
        async with trio.open_nursery() as nursery:
            path = await nursery.start(recorder.run)
            recorder.record_frame("main", "late", ts=1.0)
            nursery.cancel_scope.cancel()
    assert json.loads(path.read_text(encoding="utf-8")) == {
        "ts": 1.0,
        "account": "main",
        "frame": "late",
    }


async def test_round_trip_through_read_capture(tmp_path: Path) -> None:
    """What the recorder writes, read_capture gives back as records."""
    recorder = Recorder(tmp_path)
    with trio.fail_after(5):
        async with trio.open_nursery() as nursery:
            path = await nursery.start(recorder.run)
            recorder.record_fact("main", "connected", ts=10.0)
            recorder.record_frame("main", "frame\nwith newline", ts=11.0)
            nursery.cancel_scope.cancel()
    assert list(read_capture(path)) == [
        CaptureRecord(ts=10.0, account="main", stream_event="connected", line=1),
        CaptureRecord(ts=11.0, account="main", frame="frame\nwith newline", line=2),
    ]


async def test_disconnects_carry_their_reason_and_stops_are_marked(tmp_path: Path) -> None:
    """A disconnected line keeps its reason, a stop is marked as one, and both read back;
    a line without them reads as before."""
    recorder = Recorder(tmp_path)
    with trio.fail_after(5):
        async with trio.open_nursery() as nursery:
            path = await nursery.start(recorder.run)
            recorder.record_fact("main", "disconnected", ts=1.0, reason="closed with 1011")
            recorder.record_fact("main", "disconnected", ts=2.0, stopped=True)
            recorder.record_fact("main", "connected", ts=3.0)
            nursery.cancel_scope.cancel()
    lines = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    assert lines[0] == {
        "ts": 1.0,
        "account": "main",
        "stream_event": "disconnected",
        "reason": "closed with 1011",
    }
    assert lines[1]["stopped"] is True and "reason" not in lines[1]
    assert lines[2] == {"ts": 3.0, "account": "main", "stream_event": "connected"}
    first, stop, up = read_capture(path)
    assert (first.reason, first.stopped) == ("closed with 1011", False)
    assert (stop.reason, stop.stopped) == (None, True)
    assert (up.reason, up.stopped) == (None, False)


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("{not json", "not JSON"),
        ("[1, 2]", "expected a JSON object"),
        ('{"account": "a", "frame": "x"}', '"ts" must be unix seconds'),
        ('{"ts": "1", "account": "a", "frame": "x"}', '"ts" must be unix seconds'),
        ('{"ts": 1, "frame": "x"}', '"account" must be a non-empty string'),
        ('{"ts": 1, "account": "a"}', 'exactly one of "frame" and "stream_event"'),
        ('{"ts": 1, "account": "a", "frame": {"op": 1}}', '"frame" must be the raw frame text'),
        ('{"ts": 1, "account": "a", "stream_event": "up"}', '"stream_event" must be'),
        ('{"ts": NaN, "account": "a", "frame": "x"}', '"ts" must be unix seconds'),
        ('{"ts": Infinity, "account": "a", "frame": "x"}', '"ts" must be unix seconds'),
        ('{"ts": -1, "account": "a", "frame": "x"}', '"ts" must be unix seconds'),
        ('{"ts": 1e20, "account": "a", "frame": "x"}', '"ts" must be unix seconds'),
        ('{"ts": 1, "account": "a", "stream_event": "disconnected", "reason": 5}', '"reason"'),
        ('{"ts": 1, "account": "a", "stream_event": "disconnected", "stopped": 1}', '"stopped"'),
    ],
)
def test_bad_line_names_file_and_line(tmp_path: Path, line: str, message: str) -> None:
    """A bad line raises CaptureError that says file:line and what is wrong with it."""
    path = tmp_path / "c.jsonl"
    good = '{"ts": 1.5, "account": "main", "frame": "{}"}'
    path.write_text(f"{good}\n\n{line}\n", encoding="utf-8")
    records = read_capture(path)
    assert next(records).frame == "{}"
    with pytest.raises(CaptureError) as info:
        next(records)
    assert str(info.value).startswith(f"{path}:3: ")
    assert message in str(info.value)
