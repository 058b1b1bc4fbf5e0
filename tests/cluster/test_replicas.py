"""Replicas in one process on a real PostgreSQL server, watching a real websocket exchange:
the assignment they agree on, and the cluster's view of stream health."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta

import attrs
import trio

from alertd.cluster import ClusterSources
from alertd.events import Event, StreamGap
from alertd.store.cluster import ClusterStore

from .helpers import Exchange, account, start_exchange, wait_for

# seconds: rounds every 0.3 s, leases of 0.9 s (a round late under load must not lose one)
TAKEOVER = 1.5
ROUND = TAKEOVER / 5


@attrs.define(eq=False)
class Replica:
    """A ``ClusterSources`` with the events it hands on, and a scope that stops it."""

    sources: ClusterSources
    events: list[Event] = attrs.field(factory=list)
    scope: trio.CancelScope = attrs.field(factory=trio.CancelScope)

    def stream_events(self) -> list[Event]:
        return [e for e in self.events if e.kind.startswith("stream.")]


async def _collect(recv: trio.MemoryReceiveChannel[Event], into: list[Event]) -> None:
    async for event in recv:
        into.append(event)


@asynccontextmanager
async def cluster(
    url: str, names: list[str], accounts: list[str], *, watchers: int
) -> AsyncIterator[tuple[Exchange, dict[str, Replica]]]:
    """The exchange, and one running replica per name (each on its own URL path)."""
    async with trio.open_nursery() as nursery:
        exchange = await start_exchange(nursery)
        replicas: dict[str, Replica] = {}
        for name in names:
            send, recv = trio.open_memory_channel[Event](1000)
            settings = [account(a, exchange.url(name, a)) for a in accounts]
            sources = ClusterSources(
                settings, send, ClusterStore(url), name, watchers=watchers, takeover_after=TAKEOVER
            )
            replica = replicas[name] = Replica(sources)
            nursery.start_soon(_collect, recv, replica.events)
            nursery.start_soon(_run, replica)
        yield exchange, replicas
        nursery.cancel_scope.cancel()


async def _run(replica: Replica) -> None:
    with replica.scope:
        await replica.sources.run()


def _all_stream_events(replicas: dict[str, Replica]) -> list[Event]:
    return [e for r in replicas.values() for e in r.stream_events()]


async def test_every_account_has_its_watchers_and_a_stopped_replica_hands_over(
    postgres_url: str,
) -> None:
    """With watchers = 1 each account is watched by exactly one of two replicas, as their
    statistics say and the exchange sees; one stopping hands all its accounts to the other."""
    names = [f"acct{i}" for i in range(6)]
    with trio.fail_after(30):
        async with cluster(postgres_url, ["r1", "r2"], names, watchers=1) as (exchange, reps):

            def agreed() -> bool:
                watching = {n: set(r.sources.statistics().watching) for n, r in reps.items()}
                both_live = all(r.sources.statistics().live == ("r1", "r2") for r in reps.values())
                connected = {a: {rs[0]} for a, rs in exchange.watchers().items() if len(rs) == 1}
                seen = {a: {n for n in watching if a in watching[n]} for a in names}
                return both_live and connected == seen and len(connected) == len(names)

            await wait_for(agreed, 10, "each account watched by exactly one replica")
            first = set(reps["r1"].sources.statistics().watching)
            assert first and first != set(names)  # shared out, not all on one
            reps["r2"].scope.cancel()
            await wait_for(
                lambda: (
                    sorted(exchange.watchers()) == names
                    and all(rs == ["r1"] for rs in exchange.watchers().values())
                ),
                10,
                "r1 watching every account",
            )
            stats = reps["r1"].sources.statistics()
            assert stats.live == ("r1",)
            assert stats.watching == tuple(names)
            assert _all_stream_events(reps) == []


async def test_one_watcher_losing_the_stream_while_another_has_it_pages_nobody(
    postgres_url: str,
) -> None:
    """The watcher that reports the account losing its connection (and failing to reconnect
    for a while) while the other keeps receiving is no stream event from either replica."""
    with trio.fail_after(30):
        async with cluster(postgres_url, ["r1", "r2"], ["main"], watchers=2) as (exchange, reps):
            await wait_for(
                lambda: (
                    exchange.watchers() == {"main": ["r1", "r2"]}
                    and all(r.sources.statistics().live == ("r1", "r2") for r in reps.values())
                ),
                10,
                "both watching, each knowing the other",
            )
            [lost] = [n for n, r in reps.items() if r.sources.statistics().reporting == ("main",)]
            exchange.drop(f"/{lost}/")
            await wait_for(
                lambda: not reps[lost].sources.statistics().accounts["main"].connected,
                5,
                "the reporter down",
            )
            await trio.sleep(TAKEOVER)  # rounds enough for a blind verdict, alone
            assert all(r.sources.statistics().blind == () for r in reps.values())
            exchange.allow(f"/{lost}/")
            await wait_for(lambda: exchange.watchers() == {"main": ["r1", "r2"]}, 10, "both back")
            await trio.sleep(ROUND * 3)
            assert _all_stream_events(reps) == []


async def test_every_watcher_lost_is_one_down_one_back_and_one_gap_for_the_blind_window(
    postgres_url: str,
) -> None:
    """When both watchers lose the stream the cluster says so once: one stream.disconnected,
    one stream.connected and one stream.gap whose window is the time neither had it."""
    with trio.fail_after(30):
        async with cluster(postgres_url, ["r1", "r2"], ["main"], watchers=2) as (exchange, reps):
            await wait_for(
                lambda: exchange.watchers() == {"main": ["r1", "r2"]}, 10, "both watching"
            )
            exchange.drop("/r1/")
            await trio.sleep(ROUND * 3)
            lost = datetime.now(UTC)
            exchange.drop("/r2/")
            await wait_for(
                lambda: any(r.sources.statistics().blind == ("main",) for r in reps.values()),
                5,
                "the cluster seeing main blind",
            )
            await trio.sleep(TAKEOVER)
            back = datetime.now(UTC)
            exchange.allow("/r2/")
            gaps = await wait_for(
                lambda: [e for e in _all_stream_events(reps) if isinstance(e, StreamGap)],
                10,
                "the cluster's stream.gap",
            )
            exchange.allow("/r1/")
            await wait_for(lambda: exchange.watchers() == {"main": ["r1", "r2"]}, 10, "both")
            await trio.sleep(ROUND * 3)
            kinds = sorted(e.kind for e in _all_stream_events(reps))
            assert kinds == ["stream.connected", "stream.disconnected", "stream.gap"]
            gap = gaps[0]
            slack = timedelta(seconds=ROUND * 2)
            assert lost - slack <= gap.since <= lost + slack
            assert back <= gap.until <= back + timedelta(seconds=2)
            assert all(r.sources.statistics().blind == () for r in reps.values())


async def test_a_reload_starts_and_stops_accounts_through_the_assignment(
    postgres_url: str,
) -> None:
    """``update`` with a reloaded account list starts the new account on its watchers and
    stops the removed one, and the statistics follow."""
    with trio.fail_after(30):
        async with cluster(postgres_url, ["r1", "r2"], ["a"], watchers=2) as (exchange, reps):
            await wait_for(lambda: exchange.watchers() == {"a": ["r1", "r2"]}, 10, "a watched")
            for name, replica in reps.items():
                await replica.sources.update([account("b", exchange.url(name, "b"))])
            await wait_for(lambda: exchange.watchers() == {"b": ["r1", "r2"]}, 10, "b only")
            assert [r.sources.statistics().watching for r in reps.values()] == [("b",), ("b",)]
            assert sorted(reps["r1"].sources.statistics().accounts) == ["b"]


async def test_a_replica_without_its_database_watches_everything_and_speaks_for_itself() -> None:
    """A replica whose database refuses connections watches every account (as if alone) and,
    after takeover_after without the database, reports its own stream.disconnected."""
    with trio.fail_after(30):
        url = "postgresql://alertd@127.0.0.1:1/none"  # nothing listens on port 1
        async with cluster(url, ["r1"], ["a", "b"], watchers=1) as (exchange, reps):
            await wait_for(
                lambda: exchange.watchers() == {"a": ["r1"], "b": ["r1"]}, 10, "both watched"
            )
            stats = reps["r1"].sources.statistics()
            assert stats.watching == ("a", "b")
            assert not stats.database_ok and stats.database_errors >= 1
            await wait_for(lambda: reps["r1"].sources.statistics().degraded, 5, "degraded")
            exchange.drop("/r1/a")
            down = await wait_for(
                lambda: [e for e in reps["r1"].stream_events() if e.kind == "stream.disconnected"],
                5,
                "r1's own stream.disconnected",
            )
            assert [e.account for e in down] == ["a"]
