"""The spool on a real PostgreSQL server that is stopped and started again: dispatch's writes
go to a real SQLite spool while it is away, other calls wait for it, and when it is back
every spooled alert lands in the shared outbox once, in order; a full spool makes dispatch
wait (nothing dropped); a move cut between the commit and the spool's delete doubles
nothing."""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from functools import partial
from pathlib import Path

import attrs
import psycopg
import pytest
import trio
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from alertd.check import parse_config
from alertd.daemon.health import database_problem
from alertd.daemon.metrics import Metrics
from alertd.dispatch.dispatcher import Dispatcher
from alertd.dispatch.muting import Muter
from alertd.dispatch.silences import Silences
from alertd.events import Alert
from alertd.store.outbox import Notification, Outbox
from alertd.store.postgres import DatabaseUnavailable, PostgresDatabase
from alertd.store.rule_state import RuleStateStore, StateChanges, StateRow
from alertd.store.spool import Record, Spool, apply, outage_of, without_waiting
from alertd.store.spooling import SpoolingOutbox, for_dispatch
from pg.server import PostgresServer, private_postgres

from .helpers import sent

__all__ = ["private_postgres"]  # the fixture, for pytest

RETRY = 1.0  # seconds: [daemon] database_retry of these stores
STEP = 30.0  # seconds any one step of a test may take


def _alert(n: int) -> Alert:
    return Alert(
        id=f"alert-{n}",
        rule="filled",
        key=f"main/o{n}",
        title=f"Order {n} filled",
        body="b",
        account="main",
        event_kind="order.filled",
        created=datetime(2026, 1, 5, 12, 0, n % 60, tzinfo=UTC),
    )


def _note(n: int) -> Notification:
    return Notification(
        key=f"k{n}", channel="me", url_index=0, title=f"t{n}", body="b",
        alert_ids=(f"alert-{n}",), created=time.time(),
    )  # fmt: skip


@pytest.fixture
def server(private_postgres: PostgresServer) -> Iterator[PostgresServer]:
    """The module's own server, running again after each test whatever it did."""
    yield private_postgres
    try:
        with psycopg.connect(private_postgres.url, connect_timeout=2):
            pass
    except psycopg.OperationalError:
        private_postgres.start()


@pytest.fixture
def url(server: PostgresServer) -> str:
    return server.fresh_database()


@contextlib.asynccontextmanager
async def _running(url: str, tmp_path: Path, capacity: int) -> AsyncIterator[PostgresDatabase]:
    """A replica's store with a spool of ``capacity`` alerts, its upkeep (the probe, the
    drain) running."""
    spool = Spool(tmp_path / "spool.db", capacity=capacity)
    db = PostgresDatabase(url, replica="a", lease=5.0, retry_for=RETRY, spool=spool)
    try:
        async with trio.open_nursery() as nursery:
            await nursery.start(db.upkeep)
            yield db
            nursery.cancel_scope.cancel()
    finally:
        db.close()


@pytest.fixture
async def store(url: str, tmp_path: Path) -> AsyncIterator[PostgresDatabase]:
    async with _running(url, tmp_path, 100) as db:
        yield db


def _table(url: str) -> tuple[list[str], list[tuple[str, str]]]:
    """The outbox's keys in the order they were queued, and each alert's (id, state)."""
    with psycopg.connect(url) as conn:
        keys = [r[0] for r in conn.execute("SELECT key FROM outbox ORDER BY seq")]
        alerts = conn.execute("SELECT id, state FROM dispatch_alerts ORDER BY id").fetchall()
    return keys, [(r[0], r[1]) for r in alerts]


def _dispatcher(writes: SpoolingOutbox, db: PostgresDatabase) -> Dispatcher:
    config, _ = parse_config("")
    return Dispatcher(config, writes, Muter(config, Silences(db)))


def _scraped(dispatcher: Dispatcher) -> dict[str, float]:
    """The spool's samples of a metrics endpoint that observed dispatch's statistics."""
    metrics = Metrics()
    metrics.observe(dispatch=dispatcher.statistics(), pending=0, reload_failures=0)
    text = generate_latest(metrics.registry).decode()
    names = ("database_away", "spool_alerts", "alerts_spooled_total", "alerts_drained_total")
    return {
        sample.name: sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name.removeprefix("alertd_") in names
    }


async def _until_drained(db: PostgresDatabase) -> None:
    with trio.fail_after(STEP):
        while db.away or db.spool is None or db.spool.pending:  # noqa: ASYNC110 (polls)
            await trio.sleep(0.05)


async def test_alerts_spooled_while_the_database_is_away_land_once_in_order(
    store: PostgresDatabase, server: PostgresServer, url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """With the server stopped, dispatch's writes (alerts sent at once, one held and queued
    later, duplicates of one spooled and of one sent before) go to the spool; the health
    reason and the metrics say so; once it is back each alert is in the outbox once, in the
    order it came."""
    caplog.set_level(logging.INFO)
    outbox = Outbox(store)
    writes = for_dispatch(outbox)
    assert isinstance(writes, SpoolingOutbox)
    dispatcher = _dispatcher(writes, store)  # its statistics: what metrics observe
    now = time.time()
    assert await writes.record_and_enqueue(sent([_alert(0)], now, [_note(0)])) == 1
    server.stop()
    with trio.fail_after(STEP):
        for n in (1, 2):
            assert await writes.record_and_enqueue(sent([_alert(n)], now, [_note(n)])) == 1
        assert await writes.record_and_enqueue(sent([_alert(2)], now, [_note(2)])) is None
        assert await writes.record_alerts([_alert(3), _alert(2)], now) == [_alert(3)]
        assert await writes.enqueue([_note(3)], states={"alert-3": "sent"}) == 1
        # alert-0 seen again, grouped: the spool cannot know the database has it, sent.
        assert await writes.record_alerts([_alert(0)], now) == [_alert(0)]
        again = attrs.evolve(_note(0), key="k0-again")
        assert await writes.enqueue([again], states={"alert-0": "sent"}) == 1
    assert store.away
    assert _scraped(dispatcher)["alertd_database_away"] == 1
    outage = outage_of(store)
    assert outage is not None and outage.spool.alerts == 4 and outage.spool.records == 6
    since = time.strftime("%H:%M:%S", time.gmtime(outage.away_since or 0))
    assert database_problem(outage) == f"database unreachable since {since} UTC, 4 alerts spooled"
    assert len([r for r in caplog.records if r.message.startswith("store.database_away")]) == 1
    server.start()
    await _until_drained(store)
    keys, alerts = _table(url)
    assert keys == ["k0", "k1", "k2", "k3"]
    assert alerts == [(f"alert-{n}", "sent") for n in range(4)]
    stats = store.spool.statistics() if store.spool else None
    assert stats is not None and (stats.spooled, stats.drained, stats.alerts) == (4, 4, 0)
    assert _scraped(dispatcher) == {
        "alertd_database_away": 0, "alertd_spool_alerts": 0,
        "alertd_alerts_spooled_total": 4, "alertd_alerts_drained_total": 4,
    }  # fmt: skip
    assert len([r for r in caplog.records if r.message.startswith("store.database_back")]) == 1
    # The drained rows were handed to delivery, claimed by this replica.
    assert {r.key for r in await outbox.due("me", 0, time.time(), 10)} == {"k0", "k1", "k2", "k3"}


async def test_other_calls_wait_for_the_database_and_go_on_when_it_is_back(
    store: PostgresDatabase, server: PostgresServer, url: str
) -> None:
    """A rule state save made while the server is stopped neither fails nor is lost: it
    waits, and is written once the server is back; without waiting, a call fails at once."""
    state = RuleStateStore(store)
    row = StateRow(rule="r", fingerprint="f", key="k", data={"n": 1})
    server.stop()
    with trio.fail_after(STEP), without_waiting():
        with pytest.raises(DatabaseUnavailable, match=r"127\.0\.0\.1"):
            await state.save(StateChanges(rows=(row,)))  # retried for RETRY: away from now
        with pytest.raises(DatabaseUnavailable, match="unreachable since"):
            await state.save(StateChanges(rows=(row,)))  # at once
    saved = trio.Event()

    async def save() -> None:
        await state.save(StateChanges(rows=(row,)))
        saved.set()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(save)
        await trio.sleep(1.5)
        assert not saved.is_set()  # waiting, not failed
        server.start()
        with trio.fail_after(STEP):
            await saved.wait()
    assert [r.data for r in await state.load()] == [{"n": 1}]


async def test_a_full_spool_makes_dispatch_wait_and_drops_nothing(
    server: PostgresServer, url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A spool of 3 alerts takes 3; the fourth waits (one WARNING line, the statistics say
    full) until the server is back, and then all four are in the outbox once."""
    async with _running(url, tmp_path, 3) as store:
        await _fill_past_the_bound(store, server, url, caplog)


async def _fill_past_the_bound(
    store: PostgresDatabase, server: PostgresServer, url: str, caplog: pytest.LogCaptureFixture
) -> None:
    writes = for_dispatch(Outbox(store))
    now = time.time()
    server.stop()
    with trio.fail_after(STEP):
        for n in range(3):
            await writes.record_and_enqueue(sent([_alert(n)], now, [_note(n)]))
    done = trio.Event()

    async def fourth() -> None:
        await writes.record_and_enqueue(sent([_alert(3)], now, [_note(3)]))
        done.set()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(fourth)
        await trio.sleep(1.0)
        assert not done.is_set()
        assert store.spool is not None and store.spool.statistics().full
        full = [r for r in caplog.records if r.message.startswith("store.spool_full")]
        assert len(full) == 1 and full[0].levelno == logging.WARNING
        outage = outage_of(store)
        assert outage is not None and database_problem(outage).endswith(
            "3 alerts spooled (the spool is full at 3: dispatch waits, streams may gap)"
        )
        server.start()
        with trio.fail_after(STEP):
            await done.wait()
    await _until_drained(store)
    keys, alerts = _table(url)
    assert keys == ["k0", "k1", "k2", "k3"]
    assert [a for a, _ in alerts] == [f"alert-{n}" for n in range(4)]
    assert not store.spool.statistics().full and store.spool.statistics().fills == 1


def test_a_move_cut_before_the_spool_forgot_it_doubles_nothing(url: str, tmp_path: Path) -> None:
    """Records moved into the database whose process died before the spool deleted them
    are moved again at the next start: the outbox and alerts are as after one move."""
    path = tmp_path / "spool.db"
    db = PostgresDatabase(url, replica="a", retry_for=RETRY)
    try:
        Outbox(db)
        spool = Spool(path)
        now = time.time()
        records = [
            Record(now=now, alerts=((_alert(n), "sent"),), notifications=(_note(n),))
            for n in range(3)
        ]

        async def fill() -> None:
            for record in records:
                await spool.put(record, whole=True)

        trio.run(fill)
        db.write_sync(partial(apply, records=records))  # a drain's move committed, then a crash
        spool.close()
        again = Spool(path)
        assert again.statistics().alerts == 3
        assert again.drain_sync(db.write_sync) == 3
        assert again.statistics().alerts == 0
        again.close()
    finally:
        db.close()
    keys, alerts = _table(url)
    assert keys == ["k0", "k1", "k2"]
    assert alerts == [(f"alert-{n}", "sent") for n in range(3)]


def test_the_retry_budget_and_the_spool_bound_are_checked() -> None:
    """``database_retry`` under half a second and a ``spool_max`` under 1 are problems that
    name their line and key; the defaults are 10 s and 100,000 alerts."""
    _, problems = parse_config('[daemon]\ndatabase_retry = "0s"\nspool_max = 0\n')
    assert [str(p) for p in problems] == [
        "config.toml:2 daemon.database_retry: 0s is too short: allowed is 0.5s or more (a call "
        "tried again within it rides out a restart without spooling)",
        "config.toml:3 daemon.spool_max: 0 is too small: allowed is 1 or more",
    ]
    default, none = parse_config("")
    assert none == []
    assert (default.daemon.database_retry, default.daemon.spool_max) == (10.0, 100_000)
