"""The engine's batch path: ``process_all`` gives what ``process`` gives event by event, and
the engine task keeps events in order behind a flood without delaying a lone event."""

from __future__ import annotations

from decimal import Decimal

import trio
import trio.testing

from alertd.engine import Engine, run_engine
from alertd.events import Alert, Event

from .factories import (
    balance,
    cancelled,
    engine,
    filled,
    partial,
    placed,
    rule,
    trade,
)


def rules() -> list:  # type: ignore[type-arg]
    return [
        rule("big", on="order.filled", where="notional > 1000", key="{{ order_id }}"),
        rule("buys", on="order.*", side="buy", where="price is not none and price > 50"),
        rule("sells", on="order.filled", side="sell"),
        rule("trades", on="trade", where="price > 150", cooldown=30),
        rule(
            "low",
            type="threshold",
            on="balance.changed",
            value="balance",
            below=Decimal(100),
            resolve_above=Decimal(150),
            for_=5,
        ),
        rule("quiet", type="absence", on="trade", after=20),
        rule("slow", type="order_timeout", open_for=15, stalled_for=8),
        rule("cancels", type="rate", on="order.cancelled", count=2, within=60),
    ]


def stream() -> list[tuple[float, Event]]:
    """A mixed run of events at trio times, several sharing a time (one batch)."""
    out: list[tuple[float, Event]] = []
    t = 0.0
    for i in range(60):
        # now and then a gap long enough for timers to come due, and one for the absence
        t += 25.0 if i == 30 else 0.5 if i % 3 else 4.0
        oid = str(i % 7)
        out += [
            (t, placed(oid, t=t, side="buy" if i % 2 else "sell")),
            (t, trade(price=100 + 10 * (i % 8), t=t)),
            (t, balance(50 + 9 * (i % 13), t=t)),
        ]
        if i % 4 == 0:
            out.append((t, partial(oid, filled_="0.5", t=t)))
        if i % 5 == 0:
            out.append((t, filled(oid, side="sell" if i % 2 else "buy", amount="2", t=t)))
        if i % 6 == 0:
            out.append((t, cancelled(oid, t=t)))
    return out


def alert_view(alerts: list[Alert]) -> list[tuple[str, str, str, str, str]]:
    return [(a.id, a.rule, a.key, a.status, a.title) for a in alerts]


def batches(events: list[tuple[float, Event]]) -> list[tuple[float, list[Event]]]:
    """The events grouped by time, as the engine task takes them (one ``now`` a batch)."""
    out: list[tuple[float, list[Event]]] = []
    for t, event in events:
        if not out or out[-1][0] != t:
            out.append((t, []))
        out[-1][1].append(event)
    return out


def run_one_by_one(e: Engine, events: list[tuple[float, Event]]) -> list[Alert]:
    out: list[Alert] = []
    for t, batch in batches(events):
        for event in batch:
            out += e.process(event, t)
        out += e.advance(t)
    return out


def run_in_batches(e: Engine, events: list[tuple[float, Event]]) -> list[Alert]:
    out: list[Alert] = []
    for t, batch in batches(events):
        out += e.process_all(batch, t)
        out += e.advance(t)
    return out


def test_process_all_gives_the_alerts_of_process_event_by_event() -> None:
    """Batches of events at one time give the same alerts, in the same order, and the same
    statistics and saved state, as the same events given one at a time."""
    one, many = engine(*rules()), engine(*rules())
    events = stream()
    by_one, by_many = run_one_by_one(one, events), run_in_batches(many, events)
    assert len(by_one) > 20  # every rule type had something to say
    assert {a.rule for a in by_one} >= {"big", "buys", "trades", "low", "quiet", "slow"}
    assert alert_view(by_many) == alert_view(by_one)
    assert many.statistics() == one.statistics()
    assert sorted(map(repr, many.snapshot())) == sorted(map(repr, one.snapshot()))


async def test_a_flood_keeps_every_event_in_order() -> None:
    """Thousands of events sent as fast as the channel takes them all come out, each
    alert in the order of its event, across the engine's batches and naps."""
    e = engine(rule("each", on="order.filled", key="{{ order_id }}"))
    count = 3000
    events_in, events_out = trio.open_memory_channel[Event](4096)
    alerts_in, alerts_out = trio.open_memory_channel[Alert](count + 10)
    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            await nursery.start(run_engine, e, events_out, alerts_in)
            for i in range(count):
                events_in.send_nowait(filled(str(i)))
                if i % 3 == 0:
                    await trio.lowlevel.checkpoint()  # a reader's pace: a frame a pass
            got = [(await alerts_out.receive()).key for _ in range(count)]
            nursery.cancel_scope.cancel()
    assert got == [str(i) for i in range(count)]
    assert e.statistics().events_in == count


async def test_a_lone_event_after_a_flood_is_not_held_back(
    mock_clock: trio.testing.MockClock,
) -> None:
    """Once a flood is over, the next event is evaluated as soon as it arrives: no trio
    time passes between its arrival and its alert (this clock moves only when told)."""
    e = engine(rule("each", on="order.filled", key="{{ order_id }}"))
    events_in, events_out = trio.open_memory_channel[Event](4096)
    alerts_in, alerts_out = trio.open_memory_channel[Alert](4096)
    async with trio.open_nursery() as nursery:
        await nursery.start(run_engine, e, events_out, alerts_in)
        for i in range(500):  # a flood, then quiet
            events_in.send_nowait(filled(str(i)))
            await trio.lowlevel.checkpoint()
        while alerts_out.statistics().current_buffer_used < 500:
            mock_clock.jump(0.01)  # let a nap end
            await trio.testing.wait_all_tasks_blocked()
        mock_clock.jump(1.0)  # the state save's wake-up, if any, is done with
        await trio.testing.wait_all_tasks_blocked()
        before = trio.current_time()
        await events_in.send(filled("lone"))
        await trio.testing.wait_all_tasks_blocked()
        assert alerts_out.statistics().current_buffer_used == 501
        assert trio.current_time() == before
        nursery.cancel_scope.cancel()
