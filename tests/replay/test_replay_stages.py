"""`alertd replay` runs the daemon's stages after the engine too: grouping, configured
inhibition, quiet hours, splitting, and the silences of a state database (--state-dir), on
the capture's clock; a Cryptology account without `streams` keeps everything; the same
capture gives the same transcript every run."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import trio

from alertd.cli import main
from alertd.daemon.virtual_clock import VirtualClock
from alertd.store.database import connect, db_path
from alertd.store.silences import add_silence

DATA = Path(__file__).parent / "data"
CAPTURE = DATA / "cryptology.jsonl"  # starts 2019-06-06T05:46:40Z
START = 1559800000.0

CONFIG = """
[daemon]
timezone = "UTC"

[[accounts]]
name = "cr"
exchange = "cryptology"
url = "wss://api.cryptology.example/ws"

[channels]
desk = "json://localhost:9/desk"

[channels.night]
urls = ["json://localhost:9/night"]
quiet_hours = [{ start = "05:00", end = "06:00" }]

[channels.short]
urls = ["json://localhost:9/short"]
max_length = 100

[dispatch]
default_channel = "desk"
group_wait = "5s"

[[dispatch.inhibit]]
source_rule = "usd-low"
target_rules = ["trades"]

[[rules]]
name = "filled"
on = "order.filled"
notify = ["desk", "night"]
message = "{{ side }} {{ amount }} {{ symbol }} filled"

[[rules]]
name = "refused"
on = "funds.insufficient"
message = "order {{ order_id }} refused: no {{ currency }}"

[[rules]]
name = "usd-low"
type = "threshold"
on = "balance.changed"
currency = "USD"
value = "balance"
below = 5
message = "USD low"

[[rules]]
name = "trades"
on = "trade"
message = "trade {{ amount }}"

[[rules]]
name = "book"
on = "book"
notify = ["short"]
message = '''{{ symbol }} spread {{ spread }}, and enough words after it that a channel
taking a hundred characters a message has to split it'''
"""


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "alertd.toml"
    path.write_text(CONFIG)
    return path


def replay(capsys: pytest.CaptureFixture[str], *args: str) -> list[str]:
    code = main(["replay", *args])
    out, err = capsys.readouterr()
    assert (code, err) == (0, ""), err
    return out.splitlines()


def heads(lines: list[str]) -> list[str]:
    """The first line of each notification: time, channel, severity."""
    return [line for line in lines if " -> " in line]


def test_every_stage_after_the_engine_shapes_what_is_printed(
    capsys: pytest.CaptureFixture[str], config: Path
) -> None:
    """Alerts of one group within group_wait are one digest; an inhibited rule sends nothing;
    a channel in quiet hours gets its message when they end; a long message to a channel
    with max_length is split into parts; every message carries its channel."""
    lines = replay(capsys, "-c", str(config), str(CAPTURE))
    assert heads(lines) == [
        "2019-06-06T05:46:49.000Z -> desk (warning)",  # usd-low, after group_wait
        "2019-06-06T05:46:50.000Z -> desk (warning)",  # refused x3, one digest
        "2019-06-06T05:46:54.000Z -> short (warning)",  # the book, in two parts
        "2019-06-06T05:46:54.000Z -> short (warning)",
        "2019-06-06T05:46:55.000Z -> desk (warning)",  # order 2 filled
        "2019-06-06T06:00:00.000Z -> night (warning)",  # the same, after quiet hours
        # order 1 filled at the last record: the stop sends the held group at once
        "2019-06-06T06:53:21.000Z -> desk (warning)",
        "2019-06-06T06:53:21.000Z -> night (warning)",
    ]
    text = "\n".join(lines)
    assert "title: 3 alerts: refused (cr/USD/1)" in text
    assert text.count("order 1 refused: no USD") == 3
    assert "trade " not in text  # inhibited by usd-low, which fires throughout
    parts = [line for line in lines if line.startswith("  title: [cr] book ")]
    assert [p[-5:] for p in parts] == ["(1/2)", "(2/2)"]


def test_a_cryptology_account_without_streams_keeps_every_event(
    capsys: pytest.CaptureFixture[str], config: Path
) -> None:
    """With no `streams` key, orders, balances, shortfalls, trades and books all reach the
    rules (as in the daemon)."""
    lines = replay(capsys, "-c", str(config), str(CAPTURE), "--events")
    kinds = {line.split('"kind": "')[1].split('"')[0] for line in lines if line.startswith("{")}
    assert {
        "order.placed",
        "order.partially_filled",
        "order.filled",
        "order.cancelled",
        "balance.changed",
        "funds.insufficient",
        "trade",
        "book",
    } <= kinds


def silence(state: Path, *, starts: float, ends: float) -> None:
    conn = connect(db_path(state))
    try:
        with conn:
            add_silence(conn, rule="fill*", matchers={"account": "cr"}, starts=starts, ends=ends)
    finally:
        conn.close()


def test_silences_of_a_state_database_count_when_they_cover_the_capture(
    capsys: pytest.CaptureFixture[str], config: Path, tmp_path: Path
) -> None:
    """--state-dir takes that database's silences: one whose window covers the capture's time
    mutes its rule, one that ended before it does not; the database is only read."""
    covering, before = tmp_path / "covering", tmp_path / "before"
    covering.mkdir()
    before.mkdir()
    silence(covering, starts=START, ends=START + 86_400)
    silence(before, starts=START - 7200, ends=START - 3600)
    written = db_path(covering).stat().st_mtime_ns
    muted = replay(capsys, "-c", str(config), str(CAPTURE), "--state-dir", str(covering))
    assert "filled" not in "\n".join(muted)
    assert len(heads(muted)) == 4  # usd-low, the digest, two book parts
    assert db_path(covering).stat().st_mtime_ns == written
    kept = replay(capsys, "-c", str(config), str(CAPTURE), "--state-dir", str(before))
    assert len(heads(kept)) == 8


def test_a_state_dir_without_a_database_is_a_clear_error(
    capsys: pytest.CaptureFixture[str], config: Path, tmp_path: Path
) -> None:
    """--state-dir naming a directory with no state database exits 1 saying so."""
    code = main(["replay", "-c", str(config), str(CAPTURE), "--state-dir", str(tmp_path)])
    _, err = capsys.readouterr()
    assert code == 1
    assert err.startswith(f"alertd replay: {tmp_path}: no state database there")


@pytest.mark.parametrize("text", ["", "\n\n"])
def test_an_empty_capture_is_an_error(
    capsys: pytest.CaptureFixture[str], config: Path, tmp_path: Path, text: str
) -> None:
    """A capture with no records exits 1 with one line saying there is nothing to replay."""
    capture = tmp_path / "empty.jsonl"
    capture.write_text(text)
    code = main(["replay", "-c", str(config), str(capture)])
    out, err = capsys.readouterr()
    assert (code, out) == (1, "")
    assert err == f"alertd replay: {capture}: the capture holds no records (nothing to replay)\n"


def test_the_same_capture_gives_the_same_transcript_every_run(
    capsys: pytest.CaptureFixture[str], config: Path
) -> None:
    """Three replays of one capture print exactly the same lines."""
    runs = [replay(capsys, "-c", str(config), str(CAPTURE), "--events") for _ in range(3)]
    assert runs[0] == runs[1] == runs[2]


def test_the_virtual_clock_waits_for_worker_threads_and_skips_idle_time() -> None:
    """Time does not move while a worker thread is busy (its sleep of real time takes no
    virtual time), and jumps straight to the next deadline when every task waits."""

    async def scenario() -> tuple[float, float]:
        t0 = trio.current_time()
        await trio.to_thread.run_sync(time.sleep, 0.2)
        during = trio.current_time() - t0
        await trio.sleep(3600)
        return during, trio.current_time() - t0

    real = time.monotonic()
    during, after = trio.run(scenario, clock=VirtualClock(START))
    assert (during, after) == (0.0, 3600.0)
    assert time.monotonic() - real < 5
