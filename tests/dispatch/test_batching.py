"""Grouping does not depend on how alerts happen to be batched on their way in, nor on when
the dispatcher gets round to collecting due groups: the same arrivals, the same messages."""

from __future__ import annotations

from pathlib import Path

import pytest
import trio
import trio.testing
from hypothesis import given
from hypothesis import strategies as st

from alertd.dispatch.dispatcher import Dispatcher
from alertd.dispatch.grouping import Grouper
from alertd.dispatch.muting import Muter
from alertd.dispatch.silences import Silences
from alertd.events import Alert
from alertd.store.database import db_path
from alertd.store.outbox import Outbox

from .helpers import PausingDatabase, make_alert, make_config, no_jumps, settle

INTERVAL = 30.0

# (key, seconds after the previous arrival, collect due groups right after it arrives)
arrivals = st.lists(
    st.tuples(st.sampled_from(["a", "b"]), st.sampled_from([0.0, 0.0, 1.0, 5.0, 30.0, 31.0])),
    max_size=25,
)


def _schedule(
    wait: float, steps: list[tuple[str, float]], collect_after: set[int]
) -> list[tuple[float, str, tuple[str, ...]]]:
    """Every group the grouper hands out, as (due, key, alert ids), when due groups are
    collected after the arrivals in ``collect_after`` (and once at the end)."""
    grouper = Grouper(group_wait=wait, group_interval=INTERVAL)
    out = []
    now = 0.0
    for i, (key, gap) in enumerate(steps):
        now += gap
        grouper.add(make_alert(i, key=key), now)
        if i in collect_after:
            out += grouper.pop_due(now)
    out += grouper.pop_due(now + 10 * INTERVAL)
    return sorted((g.due, g.key, tuple(a.id for a in g.alerts)) for g in out)


@given(steps=arrivals, collect=st.sets(st.integers(0, 24)), wait=st.sampled_from([0.0, 5.0]))
def test_groups_do_not_depend_on_when_due_groups_are_collected(
    steps: list[tuple[str, float]], collect: set[int], wait: float
) -> None:
    """Collecting due groups after any arrivals (even between two arriving at the same
    instant) gives the same groups, due at the same times, as collecting only at the end."""
    assert _schedule(wait, steps, collect) == _schedule(wait, steps, set())


def test_with_no_group_wait_the_first_alert_goes_alone_and_its_company_one_interval_later() -> None:
    """group_wait 0: of alerts arriving together, the first of a group is due at once; the
    rest of its group go out together one group_interval later."""
    steps = [("a", 0.0), ("a", 0.0), ("b", 0.0), ("a", 0.0)]
    assert _schedule(0.0, steps, {0, 1, 2, 3}) == [
        (0.0, "a", ("alert-0",)),
        (0.0, "b", ("alert-2",)),
        (INTERVAL, "a", ("alert-1", "alert-3")),
    ]


async def _rows(
    tmp_path: Path,
    clock: trio.testing.MockClock,
    name: str,
    group_wait: float,
    batches: list[list[Alert]],
) -> list[tuple[int, tuple[str, ...]]]:
    """The outbox rows (seconds after the first alert they were queued, alert ids) a
    dispatcher writes when it is handed ``batches``, all at one instant."""
    db = PausingDatabase(db_path(tmp_path / name))
    try:
        outbox = Outbox(db)
        config = make_config(group_wait=group_wait, group_interval=INTERVAL)
        dispatcher = Dispatcher(config, outbox, Muter(config, Silences(db)), wall=trio.current_time)
        _, receive = trio.open_memory_channel[Alert](0)
        async with trio.open_nursery() as nursery:
            await nursery.start(dispatcher.run, receive)
            start = trio.current_time()
            with no_jumps(clock):  # one instant, however long the writes take
                for batch in batches:
                    await dispatcher.accept_many(batch)
            await settle(3 * INTERVAL)
            nursery.cancel_scope.cancel()
        rows = await outbox.rows()
        return sorted((round(r.created - start), r.alert_ids) for r in rows)
    finally:
        db.close()


@pytest.mark.parametrize("group_wait", [0.0, 10.0])
async def test_the_same_alerts_give_the_same_messages_however_they_are_batched(
    tmp_path: Path, clock: trio.testing.MockClock, group_wait: float
) -> None:
    """Alerts of one frame handed to the dispatcher in one batch, one by one, or split
    otherwise, become the same messages at the same times (before, one batch gave one
    digest and one by one gave two messages)."""
    alerts = [make_alert(1), make_alert(2), make_alert(3, key="main/ETH_USDT"), make_alert(4)]
    splits = {
        "together": [alerts],
        "one-by-one": [[a] for a in alerts],
        "split": [alerts[:1], alerts[1:]],
        "other-split": [alerts[:3], alerts[3:]],
    }
    with trio.fail_after(3600):
        results = {
            name: await _rows(tmp_path, clock, name, group_wait, batches)
            for name, batches in splits.items()
        }
    first = results["together"]
    assert all(rows == first for rows in results.values()), results
    if group_wait == 0:
        assert first == [
            (0, ("alert-1",)),
            (0, ("alert-3",)),
            (30, ("alert-2", "alert-4")),
        ]
    else:
        assert first == [(10, ("alert-1", "alert-2", "alert-4")), (10, ("alert-3",))]
