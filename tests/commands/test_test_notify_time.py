"""`alertd test-notify` says when it sent its message in ``[daemon] timezone``, zone named."""

from __future__ import annotations

import json
import re
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from alertd.cli import main
from notify.receivers import http_receiver


def sent_at(tmp_path: Path, timezone: str) -> str:
    """The "at ..." of the body a real webhook got from test-notify under ``timezone``."""
    with http_receiver() as hook:  # bounded by the channel's own timeout
        path = tmp_path / "alertd.toml"
        path.write_text(
            f'[daemon]\ntimezone = "{timezone}"\n\n[channels.hook]\n'
            f'urls = ["json://{hook.url}/"]\ntimeout = "5s"\n'
        )
        assert main(["test-notify", "-c", str(path), "hook"]) == 0
    [request] = hook.requests
    body = json.loads(request.body)["message"]
    found = re.search(r" at (.+)\.$", body)
    assert found, body
    return found.group(1)


def test_the_time_is_in_the_daemon_timezone_with_the_zone_named(tmp_path: Path) -> None:
    """Under Asia/Tokyo the message's time is Tokyo's clock, marked JST (Asia/Tokyo), not
    the host's zone."""
    text = sent_at(tmp_path, "Asia/Tokyo")
    assert text.endswith(" JST (Asia/Tokyo)"), text
    when = datetime.strptime(text[:19], "%Y-%m-%d %H:%M:%S").replace(tzinfo=ZoneInfo("Asia/Tokyo"))
    assert abs((datetime.now(ZoneInfo("Asia/Tokyo")) - when).total_seconds()) < 60


def test_utc_is_named_once(tmp_path: Path) -> None:
    """With the default timezone the time says UTC, once."""
    text = sent_at(tmp_path, "UTC")
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC", text), text
