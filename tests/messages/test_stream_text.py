"""The default text of stream alerts, rendered by the real engine for a rule with no title or
message: what happened in words, each window with its start and end in [daemon] timezone and
its length, what moved, and never the ``*`` of a connection-wide fact."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from alertd.config.model import RuleSettings
from alertd.events import (
    BalanceEvidence,
    Event,
    StreamConnected,
    StreamDisconnected,
    StreamGap,
    StreamGapEvidence,
    StreamStale,
)
from alertd.sources.streams import stream_fact
from engine.factories import engine

SINCE = datetime(2026, 12, 1, 16, 38, 36, 212_000, tzinfo=UTC)  # 17:38:36.2 CET
UNTIL = SINCE + timedelta(seconds=15.7)


def alert_for(event: Event) -> tuple[str, str]:
    """(title, body) of a default-text alert on ``event`` with [daemon] timezone Berlin."""
    rules = engine(
        RuleSettings(name="watch", on="stream.*"), accounts=("px",), timezone="Europe/Berlin"
    )
    [alert] = rules.process(event, 1.0)
    return alert.title, alert.body


def fact(cls: type[Event], **fields: Any) -> Event:
    return stream_fact(cls, exchange="piexgo", account="px", at=UNTIL, **fields)


def test_a_gap_names_its_window_in_the_display_zone_and_what_moved() -> None:
    """ "blind 17:38:36.2-17:38:51.9 CET (15.7 s), BTC 1 -> 1.6 meanwhile", and a body that
    says events may have been missed, with no "stream: *"."""
    moved = BalanceEvidence(currency="BTC", before=Decimal("1.0"), after=Decimal("1.6"))
    title, body = alert_for(
        fact(StreamGap, since=SINCE, until=UNTIL, why="offline", evidence=(moved,))
    )
    assert title == "[px] blind 17:38:36.2-17:38:51.9 CET (15.7 s), BTC 1 -> 1.6 meanwhile"
    assert body.splitlines()[0].startswith(
        "px: events may have been missed (the connection was down)"
    )
    assert "*" not in body


def test_alertds_own_downtime_says_so_and_for_how_long() -> None:
    """A gap because alertd was killed says so, with how long it was down."""
    gap = fact(StreamGap, since=SINCE, until=UNTIL, why="alertd crashed", down_for=12.34)
    title, body = alert_for(gap)
    assert title == "[px] blind 17:38:36.2-17:38:51.9 CET (15.7 s): alertd crashed (12.3 s down)"
    assert "alertd was not running (killed or crashed)" in body


def test_evidence_after_a_gap_names_the_balance_and_the_window() -> None:
    """A stream.gap.evidence reads as the currency's move while blind, with the window."""
    title, _ = alert_for(
        fact(
            StreamGapEvidence,
            since=SINCE,
            until=UNTIL,
            why="offline",
            currency="USDT",
            before=Decimal(50000),
            after=Decimal("48500.5"),
            change=Decimal("-1499.5"),
        )
    )
    assert (
        title
        == "[px] USDT 50,000 -> 48,500.5 (-1,499.5) while blind 17:38:36.2-17:38:51.9 CET (15.7 s)"
    )


def test_down_back_and_stale_read_as_words_without_a_star() -> None:
    """Connection lost with the reason, back after how long, a named stream gone quiet."""
    down = fact(StreamDisconnected, reason="closed with 1006 ABNORMAL_CLOSURE")
    assert alert_for(down)[0] == "[px] connection lost: closed with 1006 ABNORMAL_CLOSURE"
    assert alert_for(fact(StreamConnected, downtime=15.7))[0] == "[px] back after 15.7 s"
    stale = fact(StreamStale, stream="depth.btc_usdt", silent_for=90.0)
    assert alert_for(stale)[0] == "[px] depth.btc_usdt: no data for 1m 30s"
    for event in (down, stale):
        assert "*" not in "".join(alert_for(event))
