"""The cluster's decisions as plain functions: the assignment every replica computes alike,
and the cluster's view of a stream from its watchers' rows."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from alertd.cluster import view
from alertd.engine.alerts import event_identity
from alertd.events import StreamGap
from alertd.store.cluster import StreamRow, WatchRow

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
ACCOUNTS = [f"acct{i:03d}" for i in range(120)]


def _watch(replica: str, *, connected: bool, at: float, since: float | None = None) -> WatchRow:
    return WatchRow(
        account="main",
        replica=replica,
        connected=connected,
        connected_since=None if since is None else T0 + timedelta(seconds=since),
        healthy_at=T0 + timedelta(seconds=at),
        reason=None if connected else "closed",
    )


def _at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def test_every_replica_computes_the_same_watchers_from_the_same_live_set() -> None:
    """The assignment depends on the live names only, not on the order they were read in, and
    gives each account ``watchers`` distinct replicas."""
    one = view.assignment(ACCOUNTS, ["r1", "r2", "r3"], 2)
    other = view.assignment(reversed(ACCOUNTS), ["r3", "r1", "r2"], 2)
    assert one == other
    assert all(len(set(ws)) == 2 for ws in one.values())


def test_a_replica_joining_moves_only_the_accounts_it_now_watches() -> None:
    """With a fourth replica, every account whose watchers changed is one the newcomer now
    watches, and the accounts are spread over all four."""
    before = view.assignment(ACCOUNTS, ["r1", "r2", "r3"], 2)
    after = view.assignment(ACCOUNTS, ["r1", "r2", "r3", "r4"], 2)
    moved = [a for a in ACCOUNTS if set(before[a]) != set(after[a])]
    assert moved and all("r4" in after[a] for a in moved)
    per_replica = {r: sum(r in ws for ws in after.values()) for r in ("r1", "r2", "r3", "r4")}
    assert all(40 <= n <= 80 for n in per_replica.values()), per_replica


def test_watchers_one_shards_the_accounts() -> None:
    """``watchers = 1`` gives each account one replica and every replica some accounts."""
    plan = view.assignment(ACCOUNTS, ["r1", "r2", "r3"], 1)
    assert all(len(ws) == 1 for ws in plan.values())
    assert {ws[0] for ws in plan.values()} == {"r1", "r2", "r3"}


def test_one_watcher_connected_keeps_the_account_seen() -> None:
    """An account stays seen while one live watcher is connected, the other lost."""
    row = StreamRow(account="main", state="seen", changed=T0)
    watches = [_watch("r1", connected=False, at=1), _watch("r2", connected=True, at=10)]
    assert view.decide("main", row, watches, {"r1", "r2"}, _at(10), grace=15, handover=6) == row


def test_a_dead_replicas_connected_row_does_not_count() -> None:
    """A watcher whose lease ran out is not seeing the account, whatever its row says; the
    window starts when it last had the stream."""
    row = StreamRow(account="main", state="seen", changed=T0)
    watches = [_watch("r1", connected=False, at=2), _watch("r2", connected=True, at=4)]
    blind = view.decide("main", row, watches, {"r1"}, _at(20), grace=15, handover=6)
    assert blind.state == "blind"
    assert blind.blind_since == _at(4)
    assert not blind.down_sent


def test_no_watcher_for_less_than_the_handover_time_is_no_outage() -> None:
    """Every watcher without the stream for less than ``handover`` leaves the account seen;
    longer, it is blind from the last moment one had it."""
    row = StreamRow(account="main", state="seen", changed=T0)
    watches = [_watch("r1", connected=False, at=10)]
    assert view.decide("main", row, watches, {"r1"}, _at(15), grace=15, handover=6) == row
    blind = view.decide("main", row, watches, {"r1"}, _at(16), grace=15, handover=6)
    assert (blind.state, blind.blind_since) == ("blind", _at(10))


def test_a_new_account_is_blind_only_after_the_grace() -> None:
    """The cluster's first look at an account nobody has yet waits ``grace`` before it is
    blind (from the first look)."""
    watches = [_watch("r1", connected=False, at=0)]
    first = view.decide("main", None, watches, {"r1"}, T0, grace=15, handover=6)
    assert first.state == "new"
    assert view.decide("main", first, watches, {"r1"}, _at(14), grace=15, handover=6) == first
    late = view.decide("main", first, watches, {"r1"}, _at(15), grace=15, handover=6)
    assert (late.state, late.blind_since) == ("blind", T0)


def test_back_is_the_first_reconnect_and_the_same_row_makes_the_same_alert_causes() -> None:
    """A blind account is back at the earliest connect of its watchers; the down, connected
    and gap events made from that row are identical whoever makes them (the same alert ids)."""
    blind = StreamRow(
        account="main", state="blind", changed=_at(10), blind_since=_at(4), reason="x",
        down_sent=False, back_sent=True,
    )  # fmt: skip
    watches = [
        _watch("r1", connected=True, at=30, since=21),
        _watch("r2", connected=True, at=30, since=25),
    ]
    back = view.decide("main", blind, watches, {"r1", "r2"}, _at(30), grace=15, handover=6)
    assert (back.state, back.blind_since, back.back_at) == ("seen", _at(4), _at(21))
    down, up = view.pending_events(back, "piexgo")
    again_down, again_up = view.pending_events(back, "piexgo")
    assert [e.kind for e in down + up] == ["stream.disconnected", "stream.connected", "stream.gap"]
    assert [event_identity(e) for e in down + up] == [
        event_identity(e) for e in again_down + again_up
    ]
    gap = up[1]
    assert isinstance(gap, StreamGap)
    assert (gap.since, gap.until) == (_at(4), _at(21))
