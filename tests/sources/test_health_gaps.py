"""An offline gap's evidence without a snapshot, and alertd's own downtime, in stream health
as a machine of plain values (no sockets, no clock): what a server that speaks only the
Piexgo document (no acks, no snapshot) lets alertd say about what moved while it was blind."""

from __future__ import annotations

from decimal import Decimal

from alertd.sources.health import StreamHealth

from .helpers import balance_frame
from .test_health import at, events, kinds, piexgo, wall


def blind_then_back(h: StreamHealth) -> None:
    """Up with BTC 1.0 and USDT 500 seen, lost at 1 s, back at 10 s; the gap goes out at the
    end of snapshot_wait (0.5 s), since no snapshot comes."""
    h.came_up(**at(0))
    h.frame(balance_frame("BTC", "1.0"), **at(0.2))
    h.frame(balance_frame("USDT", "500"), **at(0.3))
    h.ended("closed with 1006 ABNORMAL_CLOSURE", **at(1))
    assert kinds(h.came_up(**at(10))) == ["stream.connected"]
    [gap] = events(h.tick(**at(10.5)))
    assert (gap.kind, gap.since, gap.until, gap.evidence) == ("stream.gap", wall(0.3), wall(10), ())


def test_the_first_balance_after_a_gap_that_differs_is_evidence_of_it() -> None:
    """BTC 1.0 before the gap and 1.6 first after it: a stream.gap.evidence after the balance
    event, tied to the gap's window; later changes and unchanged currencies are no evidence."""
    h = piexgo(streams=["pinfo"])
    blind_then_back(h)
    first = h.frame(balance_frame("BTC", "1.6"), **at(12))
    assert kinds(first) == ["balance.changed", "stream.gap.evidence"]
    moved = events(first)[1]
    assert (moved.since, moved.until, moved.why, moved.stream) == (
        wall(0.3),
        wall(10),
        "offline",
        "*",
    )
    assert (moved.currency, moved.before, moved.after, moved.change) == (
        "BTC",
        Decimal("1.0"),
        Decimal("1.6"),
        Decimal("0.6"),
    )
    assert kinds(h.frame(balance_frame("BTC", "1.7"), **at(13))) == ["balance.changed"]
    assert kinds(h.frame(balance_frame("USDT", "500"), **at(14))) == []


def test_a_currency_first_seen_after_the_gap_is_no_evidence() -> None:
    """A balance with nothing to compare it with says nothing about the gap."""
    h = piexgo(streams=["pinfo"])
    blind_then_back(h)
    assert kinds(h.frame(balance_frame("ETH", "2"), **at(12))) == ["balance.changed"]


def test_evidence_found_before_the_gap_goes_out_waits_for_the_gap() -> None:
    """A balance that moved, arriving while the gap still waits for a snapshot that never
    comes, is reported right after the gap, not before it."""
    h = piexgo(streams=["pinfo"])
    h.came_up(**at(0))
    h.frame(balance_frame("USDT", "500"), **at(0.2))
    h.ended("closed with 1006 ABNORMAL_CLOSURE", **at(1))
    h.came_up(**at(10))
    assert kinds(h.frame(balance_frame("USDT", "450"), **at(10.1))) == ["balance.changed"]
    gap, moved = events(h.tick(**at(10.5)))
    assert (gap.kind, moved.kind) == ("stream.gap", "stream.gap.evidence")
    assert (moved.currency, moved.change, moved.until) == ("USDT", Decimal(-50), wall(10))


def test_a_second_outage_before_the_evidence_compares_with_before_the_first() -> None:
    """A currency not seen between two outages is compared, after the second, with the
    balance seen before the first."""
    h = piexgo(streams=["pinfo"])
    blind_then_back(h)
    h.ended("closed with 1006 ABNORMAL_CLOSURE", **at(20))
    h.came_up(**at(30))
    h.tick(**at(30.5))
    moved = events(h.frame(balance_frame("BTC", "3"), **at(31)))[1]
    assert (moved.kind, moved.before, moved.since, moved.until) == (
        "stream.gap.evidence",
        Decimal("1.0"),
        wall(10),
        wall(30),
    )


# -- alertd's own downtime ----------------------------------------------------------------------


def test_alertds_own_crash_is_a_gap_from_its_last_healthy_moment() -> None:
    """Told alertd crashed after being healthy at 0 s and started at 10 s, a fresh machine
    reports, at its first connect (12 s), a gap from 0 s to 12 s, why "alertd crashed", down
    for 10 s; no "back" downtime, since this process never lost a connection."""
    h = piexgo(streams=["pinfo"])
    h.alertd_was_down(since=wall(0), stopped=False, balances={"BTC": Decimal(1)}, wall=wall(10))
    [down] = events(h.ended("connect to x:1 failed: connection refused", **at(10)))
    connected = events(h.came_up(**at(12)))
    [gap] = events(h.tick(**at(12.5)))
    assert down.kind == "stream.disconnected" and connected[0].downtime is None
    assert (gap.why, gap.since, gap.until, gap.down_for) == (
        "alertd crashed",
        wall(0),
        wall(12),
        10.0,
    )


def test_balances_from_before_alertd_was_down_give_evidence_and_changes() -> None:
    """The balances recorded before alertd stopped are what the first ones after compare
    with: a moved one is evidence (why "alertd stopped") and its balance.changed carries the
    change; an unchanged one is no event at all."""
    h = piexgo(streams=["pinfo"])
    before = {"BTC": Decimal("1.0"), "USDT": Decimal(500)}
    h.alertd_was_down(since=wall(0), stopped=True, balances=before, wall=wall(5))
    h.came_up(**at(6))
    h.tick(**at(6.5))
    assert kinds(h.frame(balance_frame("USDT", "500"), **at(7))) == []
    changed, moved = events(h.frame(balance_frame("BTC", "1.6"), **at(8)))
    assert changed.change == Decimal("0.6")
    assert (moved.why, moved.before, moved.after) == (
        "alertd stopped",
        before["BTC"],
        Decimal("1.6"),
    )


def test_alertds_downtime_does_not_replace_an_outage_this_process_saw() -> None:
    """An outage already open (the connection was lost in this process) stays the window."""
    h = piexgo(streams=["pinfo"])
    h.came_up(**at(0))
    h.ended("closed with 1006 ABNORMAL_CLOSURE", **at(1))
    h.alertd_was_down(since=wall(-100), stopped=False, balances={}, wall=wall(2))
    h.came_up(**at(3))
    [gap] = events(h.tick(**at(3.5)))
    assert (gap.why, gap.since, gap.down_for) == ("offline", wall(0), None)
