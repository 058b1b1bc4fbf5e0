"""`alertd replay` over a capture that spans a summary rule's time: the real daemon, on the
capture's clock, prints the digest at that local time with the capture's fill, its blind
window and the messages the daemon sent before it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from alertd.cli import main

DATA = Path(__file__).parent / "data"

CONFIG = """
[daemon]
timezone = "Europe/Berlin"

[[accounts]]
name = "px"
exchange = "piexgo"
url = "wss://api.piexgo.com/ws"
streams = ["pinfo", "dealinfo.btc_usdt", "depth.btc_usdt"]

[channels]
phone = "json://localhost:9/phone"

[[rules]]
name = "filled"
on = "order.filled"
notify = ["phone"]

[[rules]]
name = "daily"
type = "summary"
every = "1d"
at = "13:45"
severity = "info"
notify = ["phone"]
"""
# The capture runs 11:39:36-11:40:46 UTC (13:39-13:40 CEST); one more record at 11:46 UTC
# (13:46 CEST) takes the replay past the summary's 13:45.
LATER = {"ts": 1559735160.0, "account": "px", "stream_event": "disconnected"}


def test_replay_prints_the_summary_at_its_local_time(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The digest goes out at 13:45 CEST (11:45 UTC), once, with the day so far: the fill
    and the cancel with their notional, the blind window, the stale streams, the fill's alert."""
    config = tmp_path / "alertd.toml"
    config.write_text(CONFIG)
    capture = tmp_path / "capture.jsonl"
    lines = (DATA / "piexgo.jsonl").read_text().splitlines()
    capture.write_text("\n".join([*lines, json.dumps(LATER)]) + "\n")

    code = main(["replay", "-c", str(config), str(capture)])
    out, err = capsys.readouterr()
    assert (code, err) == (0, "")
    blocks = out.split("\n2019-")
    [digest] = [b for b in blocks if "title: daily " in b]
    assert digest.startswith("06-05T11:45:00.000Z -> phone (info)")
    # the printing notifier indents the title by two and the body by "  | "
    body = [
        line[4:] if line.startswith("  | ") else "" if line == "  |" else line.strip()
        for line in digest.splitlines()
    ]
    assert body[1:8] == [
        "title: daily Wed 05 Jun 13:45 CEST: up, 1 fill, blind 1 time",
        "13:39 to Wed 13:45 CEST (5m 24s)",
        "",
        "px (piexgo): up since 13:40 (4m 14s)",
        " 1 fill, 7,828.08 USDT",
        " 1 cancel, 3,132.46 USDT",
        " blind 1 time, 1m 2s in all:",
    ]
    assert "  13:39:44.0-13:40:46.0 (1m 2s) offline" in body
    # the fill's alert went out before the digest was built
    assert "Messages: 1 sent, 0 failed, 0 waiting" in body
    assert "Silenced: nothing" in body
