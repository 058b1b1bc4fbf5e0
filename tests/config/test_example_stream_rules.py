"""The stream rules a user copies (config.example.toml, the demo's config) deliver, for one
outage, "down", "back" with how long, and the gap with its window and what moved, each once:
stream health is driven through a real outage (against a server that sends no snapshot), its
events go through the real engine and dispatch's inhibition, and nothing is swallowed."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from alertd.check import load_config
from alertd.config.secrets import SecretEnvironment
from alertd.dispatch.inhibit import Inhibitor
from alertd.engine import Engine, compile_rules
from alertd.events import Alert, Event
from alertd.sources.health import StreamHealth
from alertd.sources.outputs import Emit

from .conftest import EXAMPLE, REPO

T0 = datetime(2026, 12, 1, 16, 38, 30, tzinfo=UTC)


def balance(token: str, value: str) -> str:
    data = {"token": token, "type": "balance", "value": value, "id": 1}
    return json.dumps({"topic": "pinfo", "type": "balance", "data": data})


def outage(health: StreamHealth) -> list[Event]:
    """Connected with BTC 1.0 seen, the last frame at 6.2 s; lost at 7 s; back at 21.9 s;
    no snapshot comes, so the gap goes out at snapshot_wait; BTC's first balance after it
    is 1.6."""
    steps = [
        (0.0, lambda n, w: health.came_up(now=n, wall=w)),
        (1.0, lambda n, w: health.frame(balance("BTC", "1.0"), now=n, wall=w)),
        (6.2, lambda n, w: health.frame(balance("USDT", "500"), now=n, wall=w)),
        (7.0, lambda n, w: health.ended("closed with 1006 ABNORMAL_CLOSURE", now=n, wall=w)),
        (21.9, lambda n, w: health.came_up(now=n, wall=w)),
        (60.0, lambda n, w: health.tick(now=n, wall=w)),
        (61.0, lambda n, w: health.frame(balance("BTC", "1.6"), now=n, wall=w)),
    ]
    events: list[Event] = []
    for offset, step in steps:
        out = step(offset, T0 + timedelta(seconds=offset))
        events += [o.event for o in out if isinstance(o, Emit)]
    return events


@pytest.mark.parametrize(
    ("path", "span", "back_after"),
    [
        (EXAMPLE, "17:38:36.2-17:38:51.9 CET (15.7 s)", "back after 14.9 s"),  # Europe/Berlin
        (REPO / "alertd" / "commands" / "demo.toml", "16:38:36.2-16:38:51.9 UTC", "after 14s"),
    ],
)
def test_one_outage_is_down_back_gap_and_evidence_each_once(
    path: Path, span: str, back_after: str, secrets: SecretEnvironment
) -> None:
    """Each of the four messages comes once, none inhibited, the back one says how long and
    the gap and evidence ones name the window and what moved."""
    config = load_config(path, secrets=secrets)
    settings = next(a for a in config.accounts if a.exchange == "piexgo")
    health = StreamHealth.for_account(settings)
    wall = [T0]
    rules = compile_rules(list(config.rules), timezone=config.daemon.timezone)
    engine = Engine(rules, wall=lambda: wall[0], accounts=tuple(a.name for a in config.accounts))
    engine.start(0.0)
    inhibitor = Inhibitor(config)
    sent: list[Alert] = []
    for event in outage(health):
        now = (event.time - T0).total_seconds()
        wall[0] = event.time
        for alert in engine.process(event, now):
            inhibitor.observe(alert, now)
            if inhibitor.inhibited_by(alert, now) is None:
                sent.append(alert)
    stream = [a for a in sent if (a.event_kind or "").startswith("stream.")]
    assert [a.event_kind for a in stream] == [
        "stream.disconnected",
        "stream.connected",
        "stream.gap",
        "stream.gap.evidence",
    ]
    down, back, gap, moved = (a.title + "\n" + a.body for a in stream)
    assert "1006" in down and back_after in back
    assert span in gap and "events may have been missed" in gap
    assert "BTC 1 -> 1.6" in moved and span in moved
