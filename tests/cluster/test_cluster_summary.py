"""A ``summary`` rule in a cluster (engine/owners, rule_types/summary): of the engines sharing
a real PostgreSQL ``rule_state``, one makes each period's summary, with every account's counts
from their owners' rows, and every owner starts the next period from zero."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

import attrs
import pytest
import trio
import trio_websocket

from alertd.config.model import RuleSettings
from alertd.engine import Engine, RuleStateStore, run_engine
from alertd.engine.assignments import GATHER_DELAY, Assignment, Assignments
from alertd.events import Alert, Event
from alertd.store.postgres import PostgresDatabase
from engine.factories import T0, FakeWall, engine, filled, rule
from integration.conftest import Procs, Receiver

from .helpers import Exchange, balance_frame, replica_toml, wait_for

HOUR = 3600.0
NEXT = 19 * HOUR  # T0 is 12:00 UTC: the next 07:00 UTC


def daily(**kw: Any) -> RuleSettings:
    return rule("daily", type="summary", every=86400.0, at="07:00", notify=["me"], **kw)


@pytest.fixture
async def stores(postgres_url: str) -> AsyncIterator[tuple[RuleStateStore, RuleStateStore]]:
    one = PostgresDatabase(postgres_url, replica="one")
    two = PostgresDatabase(postgres_url, replica="two")
    try:
        yield RuleStateStore(one), RuleStateStore(two)
    finally:
        one.close()
        two.close()


async def save(*engines: Engine) -> None:
    for e in engines:
        assert e.state is not None
        await e.state.save(e.take_state_changes())


def fills_of(alert: Alert, account: str) -> str:
    lines = alert.body.splitlines()
    at = next(i for i, line in enumerate(lines) if line.startswith(f"{account} "))
    return lines[at + 1].strip()


async def test_one_engine_makes_the_summary_with_every_owners_accounts(
    stores: tuple[RuleStateStore, RuleStateStore],
) -> None:
    """Of two engines owning a and b, only a's owner (the first account's) makes the
    summary, and it counts b's fills, which only the other engine saw; the next period starts
    from zero on both, so the next summary counts only that period's fills."""
    with trio.fail_after(30):
        one = engine(daily(), accounts=("a", "b"), state=stores[0])
        two = engine(daily(), accounts=("a", "b"), state=stores[1])
        for e, owned in ((one, {"a"}), (two, {"b"})):
            e.start(0.0, [])
            e.own(owned)
        one.process(filled("1", account="a", price="100", amount="1"), 10.0)
        for n in ("2", "3"):
            two.process(filled(n, account="b", price="100", amount="2"), 20.0)
        await save(one, two)
        assert one.advance(NEXT) == two.advance(NEXT) == []
        await save(one, two)
        assert two.owners.take_rounds() == []
        [summary] = one.owners.finish(one.owners.take_rounds(), await stores[0].load(), NEXT)
        assert (fills_of(summary, "a"), fills_of(summary, "b")) == (
            "1 fill, 100.00 USDT",
            "2 fills, 400.00 USDT",
        )
        assert summary.title.endswith("3 fills")

        two.process(filled("4", account="b", price="100", amount="1"), NEXT + 10)
        await save(one, two)  # b's owner saves its new period over the closed one
        assert one.advance(NEXT + 86400) == two.advance(NEXT + 86400) == []
        await save(one, two)
        rows = await stores[0].load()
        [second] = one.owners.finish(one.owners.take_rounds(), rows, NEXT + 86400)
        assert second.id != summary.id
        assert (fills_of(second, "a"), fills_of(second, "b")) == (
            "no fills, no cancels",
            "1 fill, 100.00 USDT",
        )


async def test_an_owner_that_has_not_closed_the_period_yet_is_counted_as_it_saved(
    stores: tuple[RuleStateStore, RuleStateStore],
) -> None:
    """An owner whose clock has not reached the due time yet has its counts read as last
    saved: they are that period's."""
    with trio.fail_after(30):
        one = engine(daily(), accounts=("a", "b"), state=stores[0])
        two = engine(daily(), accounts=("a", "b"), state=stores[1])
        for e, owned in ((one, {"a"}), (two, {"b"})):
            e.start(0.0, [])
            e.own(owned)
        two.process(filled("2", account="b", price="100", amount="2"), 20.0)
        await save(one, two)
        assert one.advance(NEXT) == []
        [summary] = one.owners.finish(one.owners.take_rounds(), await stores[0].load(), NEXT)
        assert fills_of(summary, "b") == "1 fill, 200.00 USDT"


def test_a_summary_due_before_the_first_assignment_waits_for_it() -> None:
    """A replica's engine that has no assignment yet (a summary due at start) neither sends
    the summary with its own counts nor closes the period: once assigned the first account,
    it makes it, with the counts from before."""
    e = engine(daily(), accounts=("a", "b"))
    e.start(0.0)
    e.owners.unassigned = True
    e.process(filled("1", account="a", price="100", amount="1"), 10.0)
    assert e.advance(NEXT) == e.advance(NEXT + 5) == []
    assert e.owners.take_rounds() == []
    e.own({"a"})
    assert e.advance(NEXT + 6) == []
    [summary] = e.owners.finish(e.owners.take_rounds(), [], NEXT + 6)
    assert fills_of(summary, "a") == "1 fill, 100.00 USDT"


async def test_replicas_engine_tasks_send_one_summary_with_both_accounts(
    stores: tuple[RuleStateStore, RuleStateStore],
) -> None:
    """Two engine tasks of replicas (real time, the summary due two seconds after start):
    the first account's owner sends one summary ``GATHER_DELAY`` after it fell due, with the
    other replica's account's fills; the other sends none."""
    wall = FakeWall(T0 + timedelta(seconds=NEXT - 2.0))
    outs: list[list[Alert]] = [[], []]
    first = trio.Event()  # an alert from either
    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            inputs = []
            for i, owned in enumerate(({"a"}, {"b"})):
                e = engine(daily(), accounts=("a", "b"), state=stores[i], wall=wall)
                assignments = Assignments()
                assignments.assign(Assignment(owned=owned, watched=owned, continuing=False))
                events_in, events = trio.open_memory_channel[Event](10)
                alerts_in, alerts = trio.open_memory_channel[Alert](10)
                inputs.append(events_in)
                await nursery.start(
                    partial(run_engine, e, events, alerts_in, assignments=assignments)
                )
                nursery.start_soon(_collect, alerts, outs[i], first)
            await inputs[0].send(filled("1", account="a", price="100", amount="1"))
            await inputs[1].send(filled("2", account="b", price="100", amount="3"))
            with trio.move_on_after(2.0 + GATHER_DELAY + 5.0):
                await first.wait()
            await trio.sleep(1.0)  # nothing more from either
            nursery.cancel_scope.cancel()
    assert outs[1] == []
    [summary] = outs[0]
    assert (fills_of(summary, "a"), fills_of(summary, "b")) == (
        "1 fill, 100.00 USDT",
        "1 fill, 300.00 USDT",
    )


async def _collect(
    alerts: trio.MemoryReceiveChannel[Alert], into: list[Alert], got: trio.Event
) -> None:
    async for alert in alerts:
        into.append(alert)
        got.set()


@pytest.mark.slow
async def test_two_replicas_send_one_summary_counting_every_account(
    procs: Procs, receiver: Receiver, postgres_url: str, tmp_path: Path
) -> None:
    """Two ``alertd run`` replicas with one watcher an account (r2 connects to a, b and c,
    r1 to d), each account sent one unreadable frame once so: one summary goes out at the
    due minute, and it counts that frame for every account, which neither replica sees."""
    due = _next_minute(after=20.0)  # 20 to 80 s from now: started and connected by then
    with trio.fail_after(110):  # under pytest-timeout's 120 s
        async with trio.open_nursery() as nursery:
            exchange = GarbledExchange(frame_interval=1.0)
            listeners = await nursery.start(
                trio_websocket.serve_websocket, exchange.handler, "127.0.0.1", 0, None
            )
            exchange.port = listeners.port
            for name in ("r1", "r2"):
                config = _replica_config(tmp_path, name, postgres_url, exchange, receiver, due)
                procs.daemon(config, state_dir=tmp_path / f"state-{name}", name=name)

            def one_each() -> bool:
                seen = exchange.watchers()
                by = {r for rs in seen.values() for r in rs}
                one = all(len(rs) == 1 for rs in seen.values())
                return sorted(seen) == ACCOUNTS and one and by == {"r1", "r2"}

            await wait_for(one_each, PROCESS_START, "each account watched by one replica")
            exchange.garbled = 1  # seen by each account's one watcher only
            wait = due.timestamp() - time.time() + GATHER_DELAY + 10.0
            await wait_for(receiver.delivered, wait, "the summary")
            await trio.sleep(GATHER_DELAY + 1.0)  # a second one would be here by now
            nursery.cancel_scope.cancel()
    [summary] = receiver.delivered()
    assert summary.title.startswith(f"daily {due:%a %d %b %H:%M} UTC"), summary.body
    lines = summary.message.splitlines()
    counted = [n for n in ACCOUNTS if any("unreadable frame" in s for s in _section(lines, n))]
    assert counted == ACCOUNTS, summary.message


@attrs.define(eq=False)
class GarbledExchange(Exchange):
    """The cluster tests' exchange, where each connection sends as many frames that cannot
    be read (``stream.error``, which the engine gets in a cluster too) as ``garbled`` says
    by then, in place of balance frames."""

    garbled: int = 0

    async def _feed(self, ws: trio_websocket.WebSocketConnection, scope: trio.CancelScope) -> None:
        sent = 0
        try:
            while True:
                if sent < self.garbled:
                    sent += 1
                    await ws.send_message("not a frame")
                else:
                    await ws.send_message(balance_frame("1000"))
                await trio.sleep(self.frame_interval)
        except trio_websocket.ConnectionClosed:
            scope.cancel()


def _section(lines: list[str], account: str) -> list[str]:
    """An account's lines of a summary: its heading and the indented ones after it."""
    heading = (f"{account} (", f"{account}:")  # with its exchange, or none seen
    at = next((i for i, line in enumerate(lines) if line.startswith(heading)), None)
    if at is None:
        return []
    rest = lines[at + 1 :]
    end = next((i for i, line in enumerate(rest) if not line.startswith(" ")), len(rest))
    return lines[at : at + 1 + end]


ACCOUNTS = ["a", "b", "c", "d"]  # with two replicas and watchers = 1: d is r1's, the rest r2's
PROCESS_START = 30.0  # seconds for two replicas to start and connect (CI is slow)


def _next_minute(*, after: float) -> datetime:
    """The first whole minute at least ``after`` seconds from now (UTC)."""
    soon = datetime.now(UTC) + timedelta(seconds=after)
    return soon.replace(second=0, microsecond=0) + timedelta(minutes=1)


def _replica_config(
    tmp_path: Path, name: str, database: str, exchange: Exchange, receiver: Receiver,
    due: datetime,
) -> Path:  # fmt: skip
    rules = (
        '[[rules]]\nname = "daily"\ntype = "summary"\nevery = "1h"\n'
        f'at = "{due:%H:%M}"\nnotify = ["hook"]\n'
    )
    path = tmp_path / f"{name}.toml"
    path.write_text(
        replica_toml(
            name, database=database, exchange=exchange, accounts=ACCOUNTS, hook=receiver.url(),
            watchers=1, takeover_after=5, rules=rules,
        )
    )  # fmt: skip
    return path
