"""The fence on delivery rows, on a real PostgreSQL server: a replica whose claim ran out
(paused past its lease) and was taken by another cannot write the row's outcome, and does
not start sending it; as store handles, and as real ``alertd run`` processes with SIGSTOP
and SIGCONT while a slow real HTTP receiver holds a send."""

from __future__ import annotations

import collections
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
import trio

from alertd.store.outbox import Notification, Outbox
from alertd.store.postgres import PostgresDatabase
from integration.conftest import CaptureServer, Procs, Receiver, wait_until
from store_pg.test_replicas import REPEAT, fills, order_frame, replica_config, start, titles

HANDLE_LEASE = 1.0  # seconds: the store handles' lease in the first test


def _note(key: str, index: int) -> Notification:
    return Notification(
        key=key, channel="me", url_index=index, title="t", body="b", alert_ids=(key,),
        created=time.time(),
    )  # fmt: skip


def _row(url: str, key: str) -> tuple[object, ...]:
    with psycopg.connect(url) as conn:
        found = conn.execute(
            "SELECT status, attempts, claimed_by, next_attempt, last_error, claim "
            "FROM outbox WHERE key = %s",
            (key,),
        ).fetchone()
    assert found is not None
    return tuple(found)


async def test_a_late_outcome_of_a_lapsed_claim_is_refused_and_changes_nothing(
    postgres_url: str,
) -> None:
    """Handle a claims a row, is silent past its lease, and handle b claims it: a's late
    records (delivered, a retry, expired) change nothing and a may not send it; b's own
    record of the delivery is written. A lapsed claim nobody took is confirmed again."""
    a_db = PostgresDatabase(postgres_url, replica="a", lease=HANDLE_LEASE)
    b_db = PostgresDatabase(postgres_url, replica="b", lease=HANDLE_LEASE)
    try:
        a, b = Outbox(a_db), Outbox(b_db)
        with trio.fail_after(20):
            await a.enqueue([_note("k1", 0), _note("k2", 1)])  # two URLs of one channel
            rows = await a.due("me", 0, time.time(), 10) + await a.due("me", 1, time.time(), 10)
            assert [r.key for r in rows] == ["k1", "k2"]
            await a.mark_handed(rows)
            assert await a.still_held(rows)
            await trio.sleep(HANDLE_LEASE + 0.3)  # a paused: no renewal, the leases ran out
            [taken] = await b.due("me", 0, time.time(), 10)  # URL 0's row: k1
            assert b.possible_repeat(taken)
            before = _row(postgres_url, "k1")

            assert not await a.still_held([rows[0]])  # a does not start a send of it
            await a.mark_delivered(["k1"], time.time())
            await a.mark_retry([("k1", time.time() + 60)], error="late", now=time.time())
            await a.mark_expired(["k1"], error="late", now=time.time())
            assert _row(postgres_url, "k1") == before
            assert before[:3] == ("pending", 0, b_db.claims.claimant)

            await b.mark_delivered(["k1"], time.time())
            assert _row(postgres_url, "k1")[0] == "delivered"
            # k2's claim lapsed too, but nobody took it: a confirms it and may send it.
            assert await a.still_held([rows[1]])
            await a.mark_delivered(["k2"], time.time())
            assert _row(postgres_url, "k2")[0] == "delivered"
    finally:
        a_db.close()
        b_db.close()


@pytest.fixture
def server() -> Iterator[CaptureServer]:
    """Replica a is sent ``/a``'s frames, replica b ``/b``'s (none)."""
    capture = CaptureServer(frames={"/a": [], "/b": []})
    yield capture
    capture.stop()


@pytest.mark.slow
def test_a_replica_resumed_after_its_lease_does_not_send_what_another_took(
    procs: Procs, receiver: Receiver, postgres_url: str, tmp_path: Path, server: CaptureServer
) -> None:
    """Replica a, alone, delivers a fill; the webhook turns slow and a is SIGSTOPped while it
    holds the next of three, the other two queued behind it; replica b, started then, takes
    the three once a's lease ran out and delivers them; SIGCONT: a's held send is answered,
    but a records nothing of rows b holds and does not send the two it had queued: each fill
    reaches the webhook once, and the one a held once more from b, as a possible repeat."""
    server.frames["/a"] = fills(1) + [(4.0 + 0.1 * n, order_frame(f"o{n}", 2)) for n in (1, 2, 3)]
    server.start()
    hook = receiver.url()
    [a] = start(procs, tmp_path, "a", url=postgres_url, server=server, hook=hook)
    wait_until(lambda: titles(receiver), 30, "a delivering the first fill")
    with receiver.lock:
        receiver.delay = 3.0  # a's next send is held this long
    wait_until(lambda: _pending(postgres_url) == 3, 30, "three rows queued")
    wait_until(lambda: _handed(postgres_url), 10, "a handing the first of them over")
    time.sleep(0.5)  # the POST reached the receiver
    a.send_signal(signal.SIGSTOP)
    try:
        with receiver.lock:
            receiver.delay = 0.0  # what is sent from now on is taken at once
        config = replica_config(
            tmp_path, "b", database=postgres_url, ws=server.url("/b"), hook=hook
        )
        procs.daemon(config, state_dir=tmp_path / "state-b", name="alertd-b")
        wait_until(lambda: _pending(postgres_url) == 0, 30, "b delivering all three")
    finally:
        a.send_signal(signal.SIGCONT)
    wait_until(lambda: len(a.matches(r"delivery\.sent ")) >= 2, 10, "a's held send answered")
    time.sleep(2.0)  # time for a's copies of the two it had queued, if it sent them
    # a's held send and b's copy of it (a possible repeat, as every row a had handed over)
    got = collections.Counter(t.removeprefix(REPEAT) for t in titles(receiver))
    assert got == {"filled o0": 1, "filled o1": 2, "filled o2": 1, "filled o3": 1}, got
    assert collections.Counter(r[0] for r in _statuses(postgres_url)) == {"delivered": 4}
    assert a.matches(r"store\.fenced rows=")


def _pending(url: str) -> int:
    return sum(1 for status, _ in _statuses(url) if status == "pending")


def _handed(url: str) -> bool:
    return any(status == "pending" and handed != 0 for status, handed in _statuses(url))


def _statuses(url: str) -> list[tuple[str, int]]:
    with psycopg.connect(url) as conn:
        return [(r[0], r[1]) for r in conn.execute("SELECT status, handed FROM outbox")]
