"""A real ``alertd run`` replica on a real PostgreSQL server that is stopped for longer than
the replica's retry budget (``database_retry = "2s"``, the server away 8 s): the replica
runs on, reading its stream and evaluating its rules; the fills of the outage wait in its
spool and are delivered to a real webhook once each when the server is back; its heartbeat
told a real HTTP service /fail with the reason meanwhile. And a replica killed (SIGKILL)
while alerts are spooled delivers them, once each, when it starts again."""

from __future__ import annotations

import collections
import json
import signal
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from alertd.store.spool import SPOOL_FILENAME
from integration.conftest import START_TIMEOUT, CaptureServer, Proc, Procs, Receiver, wait_until
from pg.server import PostgresServer, private_postgres
from store_pg.test_replicas import fills, replica_config

__all__ = ["private_postgres"]  # the fixture, for pytest

RETRY = 2.0  # seconds: the replica's [daemon] database_retry
OUTAGE = RETRY + 8.0  # seconds the server is stopped
UUID = "5b0c1f7e-8d2a-4c3e-9f61-0a7b2d4e6c18"  # the heartbeat check's path

DAEMON = f"""\
database_retry = "{RETRY:g}s"
"""
HEARTBEAT = """
[daemon.heartbeat]
url = "{env:HEARTBEAT_URL}"
interval = "1s"
timeout = "2s"

"""


@pytest.fixture
def server() -> Iterator[CaptureServer]:
    capture = CaptureServer(frames={"/a": [], "/b": []})
    yield capture
    capture.stop()


@pytest.fixture
def database(private_postgres: PostgresServer) -> Iterator[str]:
    """A fresh database on the module's own server, which is running again afterwards."""
    url = private_postgres.fresh_database()
    yield url
    if not (private_postgres.directory / "data" / "postmaster.pid").exists():
        private_postgres.start()


def _replica(
    procs: Procs, tmp_path: Path, url: str, ws: CaptureServer, receiver: Receiver, name: str = "a"
) -> Proc:
    """Replica ``name`` (its spool in tmp_path/state-NAME), once it is ready."""
    hook = receiver.url()
    path = replica_config(tmp_path, name, database=url, ws=ws.url(f"/{name}"), hook=hook)
    text = path.read_text().replace("[daemon]\n", "[daemon]\n" + DAEMON, 1)
    path.write_text(text.replace("\n[[accounts]]", HEARTBEAT + "[[accounts]]", 1))
    ping = f"http://127.0.0.1:{receiver.port}/ping/{UUID}"
    state = tmp_path / f"state-{name}"
    daemon = procs.daemon(path, state_dir=state, env={"HEARTBEAT_URL": ping}, name=f"alertd-{name}")
    daemon.wait_for_line(r"daemon\.ready ", START_TIMEOUT)
    return daemon


def titles(receiver: Receiver) -> collections.Counter[str]:
    """The notifications the webhook got (the heartbeat pings the same server)."""
    return collections.Counter(p.title for p in receiver.delivered() if p.path == "/alerts")


def _fails(receiver: Receiver) -> list[str]:
    """The bodies of the heartbeat's /fail pings."""
    return [str(p.body.get("raw")) for p in receiver.snapshot() if p.path.endswith("/fail")]


def _spooled_titles(state_dir: Path) -> list[str]:
    """The titles of the notifications the spool file holds (read as the file it is)."""
    conn = sqlite3.connect(state_dir / SPOOL_FILENAME)
    try:
        rows = conn.execute("SELECT record FROM spool ORDER BY seq").fetchall()
    finally:
        conn.close()
    return [n["title"] for (text,) in rows for n in json.loads(text)["notifications"]]


@pytest.mark.slow
def test_a_replica_runs_through_an_outage_longer_than_its_retries(
    procs: Procs,
    receiver: Receiver,
    private_postgres: PostgresServer,
    database: str,
    tmp_path: Path,
    server: CaptureServer,
) -> None:
    """Twenty-four fills over twelve seconds, the server stopped for ten of them: the replica
    never stops, says once that the database went away and once that it is back, tells the
    heartbeat /fail 'database unreachable since ..., N alerts spooled', and every fill
    reaches the webhook exactly once, in order."""
    server.frames["/a"] = fills(24, start=3.0, every=0.5)
    server.start()
    a = _replica(procs, tmp_path, database, server, receiver)
    wait_until(lambda: titles(receiver), 30, "the first fill delivered", dump=a.tail)
    private_postgres.stop()
    stopped = time.monotonic()
    a.wait_for_line(r"store\.database_away ", RETRY + 10)
    wait_until(lambda: _fails(receiver), 10, "a /fail ping", dump=a.tail)
    delivered_during = sum(titles(receiver).values())
    time.sleep(max(0.0, OUTAGE - (time.monotonic() - stopped)))
    assert a.returncode is None, a.tail()
    private_postgres.start()
    expected = [f"filled o{n}" for n in range(24)]
    wait_until(lambda: set(expected) <= set(titles(receiver)), 30, "24 fills", dump=a.tail)
    time.sleep(1.0)  # a second copy, if any, would have arrived by now
    assert titles(receiver) == collections.Counter(expected)
    got = [p.title for p in receiver.delivered() if p.path == "/alerts"]
    assert got == expected  # one account's alerts in the order they came
    assert delivered_during <= 3  # what was sent before the stop, or in flight then
    assert a.returncode is None, a.tail()
    assert len(a.matches(r"store\.database_away ")) == 1
    [back] = a.matches(r"store\.database_back database=\S+ after=\S+ spooled=(\d+)")
    assert int(back.group(1)) >= 10  # the fills of the outage waited in the spool
    told = [r for r in _fails(receiver) if r.startswith("database unreachable since ")]
    assert told and any(not r.endswith(" 0 alerts spooled") for r in told), _fails(receiver)
    wait_until(lambda: a.matches(r"store\.spool_drained alerts="), 10, "the drain", dump=a.tail)


@pytest.mark.slow
def test_a_replica_killed_while_alerts_are_spooled_delivers_them_once_after_restart(
    procs: Procs,
    receiver: Receiver,
    private_postgres: PostgresServer,
    database: str,
    tmp_path: Path,
    server: CaptureServer,
) -> None:
    """Fills spooled while the server is stopped, the replica SIGKILLed, the server started,
    the replica started again: each spooled fill reaches the webhook once, and none that was
    delivered before comes again."""
    server.frames["/a"] = fills(12, start=3.0, every=0.5)
    server.start()
    a = _replica(procs, tmp_path, database, server, receiver)
    wait_until(lambda: titles(receiver), 30, "the first fill delivered", dump=a.tail)
    private_postgres.stop()
    a.wait_for_line(r"store\.database_away ", RETRY + 10)
    state = tmp_path / "state-a"
    wait_until(lambda: len(_spooled_titles(state)) >= 3, 10, "three fills spooled", dump=a.tail)
    a.send_signal(signal.SIGKILL)
    a.wait(10)
    spooled = _spooled_titles(state)
    before = titles(receiver)
    private_postgres.start()
    b = _replica(procs, tmp_path, database, server, receiver)
    b.wait_for_line(r"store\.spool_drained alerts=\d+ \(left by an earlier run\)", 10)
    wait_until(lambda: set(spooled) <= set(titles(receiver)), 30, "the spooled fills", dump=b.tail)
    time.sleep(1.0)
    after = titles(receiver)
    assert set(after.values()) == {1}, after  # nothing twice
    assert set(spooled).isdisjoint(before)  # spooled ones came only after the restart
    assert b.returncode is None, b.tail()


@pytest.mark.slow
def test_a_replica_stopped_while_the_database_is_away_exits_and_keeps_the_spool(
    procs: Procs,
    receiver: Receiver,
    private_postgres: PostgresServer,
    database: str,
    tmp_path: Path,
    server: CaptureServer,
) -> None:
    """SIGTERM while the server is stopped and fills are spooled: the replica exits within
    a few seconds (no call waits for the database any more), the spool keeps the fills, and
    the next start delivers them once each."""
    server.frames["/a"] = fills(8, start=3.0, every=0.5)
    server.start()
    a = _replica(procs, tmp_path, database, server, receiver)
    wait_until(lambda: titles(receiver), 30, "the first fill delivered", dump=a.tail)
    private_postgres.stop()
    state = tmp_path / "state-a"
    wait_until(lambda: len(_spooled_titles(state)) >= 2, 15, "two fills spooled", dump=a.tail)
    a.send_signal(signal.SIGTERM)
    code = a.wait(20)
    spooled = _spooled_titles(state)
    assert spooled, a.tail()
    private_postgres.start()
    b = _replica(procs, tmp_path, database, server, receiver)
    wait_until(lambda: set(spooled) <= set(titles(receiver)), 30, "the spooled fills", dump=b.tail)
    time.sleep(1.0)
    assert set(titles(receiver).values()) == {1}, titles(receiver)
    assert code == 0, a.tail()


@pytest.mark.slow
def test_two_replicas_that_spooled_the_same_fills_deliver_each_once(
    procs: Procs,
    receiver: Receiver,
    private_postgres: PostgresServer,
    database: str,
    tmp_path: Path,
    server: CaptureServer,
) -> None:
    """Two replicas watching one account are sent the same fills while the server is
    stopped: each spools them, both drain when it is back, and each fill reaches the
    webhook once (the second drain finds the alerts known)."""
    server.frames["/a"] = server.frames["/b"] = fills(16, start=3.0, every=0.5)
    server.start()
    a = _replica(procs, tmp_path, database, server, receiver, "a")
    b = _replica(procs, tmp_path, database, server, receiver, "b")
    wait_until(lambda: titles(receiver), 30, "the first fill delivered", dump=a.tail)
    private_postgres.stop()
    for replica in (a, b):
        replica.wait_for_line(r"store\.database_away ", RETRY + 10)
    time.sleep(OUTAGE - RETRY)
    private_postgres.start()
    expected = [f"filled o{n}" for n in range(16)]
    wait_until(lambda: set(expected) <= set(titles(receiver)), 30, "16 fills", dump=a.tail)
    time.sleep(1.0)
    assert titles(receiver) == collections.Counter(expected)
    for replica in (a, b):
        [back] = replica.matches(r"store\.database_back \S+ after=\S+ spooled=(\d+)")
        assert int(back.group(1)) >= 5, replica.tail()  # both held fills of the outage
