"""The store on a real PostgreSQL server: the schema alertd creates and migrates, what
``check`` says of a database, and the outbox, rule state and silences shared by replicas."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from datetime import UTC, datetime

import psycopg
import pytest
import trio

from alertd.events import Alert
from alertd.store import postgres, schema
from alertd.store.outbox import Notification, Outbox
from alertd.store.postgres import DatabaseUnavailable, PostgresDatabase
from alertd.store.rule_state import RuleStateStore, StateChanges, StateRow
from alertd.store.silences import add_silence, data_version, list_silences

from .helpers import sent


def _alert(n: int) -> Alert:
    return Alert(
        id=f"alert-{n}",
        rule="filled",
        key="main/BTC_USDT",
        title=f"Order {n} filled",
        body="b",
        account="main",
        event_kind="order.filled",
        created=datetime(2026, 1, 5, 12, 0, n % 60, tzinfo=UTC),
    )


def _note(key: str, alert_id: str) -> Notification:
    return Notification(
        key=key,
        channel="me",
        url_index=0,
        title="t",
        body="b",
        alert_ids=(alert_id,),
        created=time.time(),
    )


@pytest.fixture
def replicas(postgres_url: str) -> Iterator[tuple[PostgresDatabase, PostgresDatabase]]:
    """Two replicas' stores on one database, with a one-second lease."""
    a = PostgresDatabase(postgres_url, replica="a", lease=1.0)
    b = PostgresDatabase(postgres_url, replica="b", lease=1.0)
    yield a, b
    a.close()
    b.close()


def test_schema_is_created_at_the_expected_version(postgres_url: str) -> None:
    """An empty database gets every table and schema_version at this alertd's version."""
    conn = postgres.connect(postgres_url)
    try:
        assert schema.version(conn) == schema.VERSION
    finally:
        conn.raw.close()
    assert postgres.check(postgres_url) == (
        True,
        f"database {postgres.where(postgres_url)}: reachable, schema version "
        f"{schema.VERSION} (as expected)",
    )


async def test_an_older_schema_is_migrated_keeping_its_rows(postgres_url: str) -> None:
    """A database at version 1 with a pending row is migrated on open; the row survives
    and is delivered from the migrated table."""
    with psycopg.connect(postgres_url, autocommit=True) as raw:
        conn = postgres.PgConnection(raw, postgres.Claims(replica="", claimant="", lease=1))
        with raw.transaction():
            schema.migrate(conn, target=1)
        raw.execute(
            "INSERT INTO outbox (key, channel, url_index, title, body, alert_ids, next_attempt,"
            " created, due_since, updated) VALUES ('old', 'me', 0, 't', 'b', '[]', 1, 1, 1, 1)"
        )
    ok, line = postgres.check(postgres_url)
    assert ok and "schema version 1 (migrated to" in line
    db = PostgresDatabase(postgres_url, replica="a")
    try:
        outbox = Outbox(db)
        assert [r.key for r in await outbox.due("me", 0, time.time(), 10)] == ["old"]
        assert postgres.check(postgres_url)[0]
    finally:
        db.close()


def test_check_reports_unreachable_and_newer_schemas(postgres_url: str) -> None:
    """An unreachable server and a schema newer than this alertd are each one line, not
    fine; the password never appears in it."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"postgresql://alertd:s3cret-pw@127.0.0.1:{port}/alertd"
    ok, line = postgres.check(url, timeout=2)
    assert not ok and f"127.0.0.1:{port}/alertd" in line
    assert "s3cret" not in line and "\n" not in line
    with pytest.raises(DatabaseUnavailable, match=f"127.0.0.1:{port}"):
        PostgresDatabase(url, replica="a", timeout=2)
    with psycopg.connect(postgres_url, autocommit=True) as raw:
        raw.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
        raw.execute("INSERT INTO schema_version VALUES (99)")
    ok, line = postgres.check(postgres_url)
    assert not ok and "schema version 99 is newer" in line
    with pytest.raises(schema.SchemaError, match="newer than this alertd"):
        PostgresDatabase(postgres_url, replica="a")


async def test_two_replicas_queue_one_notification_and_one_sends_it(
    replicas: tuple[PostgresDatabase, PostgresDatabase],
) -> None:
    """The same alert and notification from two replicas is one row, handed to the
    replica that queued it first; the other finds nothing of it to send."""
    a, b = Outbox(replicas[0]), Outbox(replicas[1])
    alert = _alert(1)
    note = _note("k1", alert.id)
    assert await a.record_and_enqueue(sent([alert], time.time(), [note])) == 1
    assert await b.record_and_enqueue(sent([alert], time.time(), [note])) is None
    assert await b.record_alerts([alert], time.time()) == []
    assert await b.enqueue([note]) == 0
    assert (await a.statistics()).pending == 1
    assert await b.due("me", 0, time.time(), 10) == []
    assert await b.pending_count() == 0  # a's to send
    [row] = await a.due("me", 0, time.time(), 10)
    assert not a.possible_repeat(row)


async def test_a_dead_replicas_row_goes_to_another_marked_as_a_possible_repeat(
    postgres_url: str,
) -> None:
    """A row a replica handed to a service and then stopped renewing is taken by another
    once the lease ran out, as a possible repeat; never before."""
    a_db = PostgresDatabase(postgres_url, replica="a", lease=1.0)
    b_db = PostgresDatabase(postgres_url, replica="b", lease=1.0)
    try:
        a, b = Outbox(a_db), Outbox(b_db)
        await a.enqueue([_note("k1", "x")])
        [row] = await a.due("me", 0, time.time(), 10)
        await a.mark_handed([row])  # in the service's hands when a dies (no renewal, no close)
        assert await b.due("me", 0, time.time(), 10) == []
        due = await b.next_due("me", 0)
        assert due is not None and due > time.time()
        with trio.fail_after(5):
            await trio.sleep(due - time.time() + 0.05)  # the lease ran out: b's turn
        taken = await b.due("me", 0, time.time(), 10)
        assert [r.key for r in taken] == ["k1"] and b.possible_repeat(taken[0])
        assert await a.due("me", 0, time.time(), 10) == []  # b holds it now
    finally:
        a_db.pool.close()  # dies: its claims are not released
        b_db.close()


async def test_a_stopped_replica_releases_its_rows_at_once(
    replicas: tuple[PostgresDatabase, PostgresDatabase],
) -> None:
    """Rows a replica queued and had not sent go to another as soon as it closes, not
    handed over before, so not marked."""
    a_db, b_db = replicas
    await Outbox(a_db).enqueue([_note("k1", "x")])
    b = Outbox(b_db)
    assert await b.due("me", 0, time.time(), 10) == []
    a_db.close()
    [row] = await b.due("me", 0, time.time(), 10)
    assert row.key == "k1" and not b.possible_repeat(row)


async def test_upkeep_renews_claims_past_the_lease(
    replicas: tuple[PostgresDatabase, PostgresDatabase],
) -> None:
    """While a replica's upkeep runs, its rows stay its own long past one lease."""
    a_db, b_db = replicas
    await Outbox(a_db).enqueue([_note("k1", "x")])
    b = Outbox(b_db)
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            await nursery.start(a_db.upkeep)
            await trio.sleep(2.5)
            assert await b.due("me", 0, time.time(), 10) == []
            nursery.cancel_scope.cancel()


async def test_rule_state_and_silences_are_shared(
    replicas: tuple[PostgresDatabase, PostgresDatabase],
) -> None:
    """Rule state saved by one replica loads in another; a silence added through one
    connection is listed by the other, whose data_version changed."""
    a, b = replicas
    row = StateRow(rule="r", fingerprint="f", key="k", data={"firing": True})
    await RuleStateStore(a).save(StateChanges(rows=(row,)))
    await RuleStateStore(a).save(StateChanges(rows=(row,)))  # a second save replaces it
    assert await RuleStateStore(b).load() == [row]
    before = await b.run(data_version)
    now = time.time()
    added = await a.run(
        lambda c: add_silence(c, rule="filled", matchers={}, starts=now, ends=now + 60)
    )
    assert await b.run(data_version) != before
    assert await b.run(lambda c: list_silences(c, now=now)) == [added]


async def test_alerts_held_in_a_group_belong_to_their_replica_until_it_dies(
    postgres_url: str,
) -> None:
    """An alert one replica holds in a group is not another's to restore while the first
    lives; once its lease ran out, the next replica to look holds it."""
    a_db = PostgresDatabase(postgres_url, replica="a", lease=1.0)
    b_db = PostgresDatabase(postgres_url, replica="b", lease=1.0)
    try:
        a, b = Outbox(a_db), Outbox(b_db)
        alert = _alert(7)
        assert await a.record_alert(alert, time.time())  # held, by default
        assert await b.held_alerts() == []
        assert await a.held_alerts() == [alert]
        with trio.fail_after(5):
            await trio.sleep(1.1)  # a dies: it renews nothing
        assert await b.held_alerts() == [alert]
        assert await a.held_alerts() == []  # b's now
    finally:
        a_db.pool.close()
        b_db.close()
