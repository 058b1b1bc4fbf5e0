"""`alertd replay`: captures built from both protocol documents, run through the daemon's
stages on the capture's clock, give the checked-in transcripts of notifications; bad captures
get clear errors; nothing is sent."""

from __future__ import annotations

import io
import json
import socket
from decimal import Decimal
from pathlib import Path

import pytest

from alertd.check import load_config, parse_config
from alertd.cli import main
from alertd.commands.replay import replay
from alertd.config.secrets import SecretEnvironment

DATA = Path(__file__).parent / "data"
CONFIG = DATA / "config.toml"


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["replay", "-c", str(CONFIG), *args])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("name", ["piexgo", "cryptology"])
def test_golden_transcript_with_events(capsys: pytest.CaptureFixture[str], name: str) -> None:
    """Each capture gives exactly the checked-in transcript, events and alerts interleaved."""
    code, out, err = run(capsys, str(DATA / f"{name}.jsonl"), "--events")
    assert (code, err) == (0, "")
    assert out.splitlines() == (DATA / f"{name}.expected").read_text().splitlines()


@pytest.mark.parametrize("name", ["piexgo", "cryptology"])
def test_without_events_only_alerts_are_printed(
    capsys: pytest.CaptureFixture[str], name: str
) -> None:
    """Without --events the transcript is the same alerts, with no JSON event lines."""
    code, out, _ = run(capsys, str(DATA / f"{name}.jsonl"))
    expected = [
        line
        for line in (DATA / f"{name}.expected").read_text().splitlines()
        if not line.startswith("{")
    ]
    assert code == 0
    assert out.splitlines() == expected


def test_event_lines_are_exact_json() -> None:
    """--events lines are JSON with Decimals as exact strings and times in ISO-8601 UTC."""
    events = [
        json.loads(line)
        for line in (DATA / "piexgo.expected").read_text().splitlines()
        if line.startswith("{")
    ]
    filled = next(e for e in events if e["kind"] == "order.filled")
    assert Decimal(filled["notional"]) == Decimal("7828.07520000")
    assert filled["time"] == "2019-06-05T11:39:40.000Z"  # when the capture saw it
    assert filled["order_time"] == "2019-06-05T11:39:36.000Z"  # the order's own timestamp
    assert "raw" not in filled


def test_timer_alerts_carry_their_own_time() -> None:
    """An order timeout fires at its deadline between records, not at the next record."""
    out = io.StringIO()
    config = load_config(CONFIG, secrets=SecretEnvironment(environ={}))
    sent = replay(config, DATA / "cryptology.jsonl", events=False, out=out)
    assert (
        "2019-06-06T06:46:41.000Z -> desk (warning)\n"
        "  title: [cr] order-open: order 1 BTC_USD buy open for 1h\n"
    ) in out.getvalue()
    assert sent == out.getvalue().count(" -> ")


def test_replay_sends_nothing(tmp_path: Path) -> None:
    """With a channel pointing at a real listening socket, replay connects to nothing."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        listener.setblocking(False)
        port = listener.getsockname()[1]
        text = CONFIG.read_text().replace("json://localhost:9/", f"json://127.0.0.1:{port}/")
        config, problems = parse_config(text, secrets=SecretEnvironment(environ={}))
        assert problems == [] and config is not None
        out = io.StringIO()
        assert replay(config, DATA / "cryptology.jsonl", events=False, out=out) > 0
        with pytest.raises(BlockingIOError):
            listener.accept()


def test_missing_capture_file(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    """A capture path that does not exist exits 1 naming it."""
    code, _, err = run(capsys, str(tmp_path / "none.jsonl"))
    assert code == 1
    assert err == f"alertd replay: {tmp_path / 'none.jsonl'}: no such capture file\n"


def test_bad_line_names_capture_and_line(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """A line that is not a capture record stops the replay with CAPTURE:LINE: reason."""
    capture = tmp_path / "c.jsonl"
    lines = (DATA / "piexgo.jsonl").read_text().splitlines()
    capture.write_text("\n".join([*lines[:2], '{"ts": "soon", "account": "px"}', *lines[2:]]))
    code, _, err = run(capsys, str(capture))
    assert code == 1
    assert err.startswith(f"alertd replay: {capture}:3: ")
    assert '"ts" must be unix seconds' in err


def test_unknown_account_is_a_clear_error(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """A record for an account the config does not have names it and the known ones."""
    capture = tmp_path / "c.jsonl"
    capture.write_text('{"ts": 1.0, "account": "main", "stream_event": "connected"}\n')
    code, _, err = run(capsys, str(capture))
    assert code == 1
    assert err == (
        f"alertd replay: {capture}:1: account 'main' is not in the config (accounts: px, cr)\n"
    )


def test_invalid_config_is_reported(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    """A config with problems is refused with the same lines `alertd check` prints."""
    config = tmp_path / "bad.toml"
    config.write_text('[daemon]\ntimezone = "Nowhere"\n')
    code = main(["replay", "-c", str(config), str(DATA / "piexgo.jsonl")])
    _, err = capsys.readouterr()
    assert code == 1
    assert err == f'{config}:2 daemon.timezone: "Nowhere" is not a time zone\n'


def test_reconnect_in_a_capture_is_a_gap_a_rule_can_take(tmp_path: Path) -> None:
    """connected, a frame, disconnected, connected gives stream.connected (with downtime) then
    stream.gap (offline, from the last frame to the reconnect; reported once Piexgo's balance
    snapshot had its snapshot_wait), as the daemon does, and a rule on stream.gap fires."""
    text = CONFIG.read_text() + (
        '\n[[rules]]\nname = "gap"\non = "stream.gap"\n'
        "message = \"{{ why }} {{ localtime(since, '%H:%M:%S') }}-"
        "{{ localtime(until, '%H:%M:%S') }}\"\n"
    )
    config, problems = parse_config(text, secrets=SecretEnvironment(environ={}))
    assert problems == [] and config is not None
    frame = json.loads((DATA / "piexgo.jsonl").read_text().splitlines()[1])["frame"]
    capture = tmp_path / "c.jsonl"
    capture.write_text(
        "\n".join(
            json.dumps(r)
            for r in [
                {"ts": 100.0, "account": "px", "stream_event": "connected"},
                {"ts": 150.0, "account": "px", "frame": frame},
                {"ts": 200.0, "account": "px", "stream_event": "disconnected"},
                {"ts": 300.0, "account": "px", "stream_event": "connected"},
                {"ts": 310.0, "account": "px", "frame": frame},  # the same balance: no event
            ]
        )
    )
    out = io.StringIO()
    replay(config, capture, events=True, out=out)
    events = [json.loads(line) for line in out.getvalue().splitlines() if line.startswith("{")]
    assert [e["kind"] for e in events][-2:] == ["stream.connected", "stream.gap"]
    up, gap = events[-2:]
    assert up["downtime"] == 100.0
    assert gap["time"] == "1970-01-01T00:05:03.000Z"  # snapshot_wait (3s) after the reconnect
    assert (gap["stream"], gap["why"]) == ("*", "offline")
    assert (gap["since"], gap["until"]) == ("1970-01-01T00:02:30.000Z", "1970-01-01T00:05:00.000Z")
    assert "  | offline 00:02:30-00:05:00" in out.getvalue().splitlines()
