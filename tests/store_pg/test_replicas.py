"""Replicas as real ``alertd run`` processes on one real PostgreSQL database, fed by a real
websocket server, delivering to a real HTTP receiver: one notification per fill however many
replicas saw it, silences shared, and a dead replica's send taken over, marked."""

from __future__ import annotations

import collections
import json
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from alertd import cli
from alertd.store import schema
from integration.conftest import START_TIMEOUT, CaptureServer, Proc, Procs, Receiver, wait_until
from pg.server import PostgresServer

REPEAT = "[possible repeat] "
LEASE = 2.0  # seconds: [daemon] delivery_lease of these replicas


def order_frame(order_id: str, status: int) -> str:
    data = {
        "order_price": "100", "price": "100", "stop": "0", "market_price": "0",
        "volume": "1", "remain": "0" if status == 2 else "1", "amount": "100",
        "type": "buy", "timestamp": 1559734776, "order_id": order_id, "market": "BTC_USDT",
        "status": status, "flag": 0, "id": 1,
    }  # fmt: skip
    return json.dumps({"topic": "pinfo", "type": "order", "data": data})


def fills(
    count: int, *, start: float = 1.5, every: float = 0.1, placed: bool = False
) -> list[tuple[float, str]]:
    """``count`` orders filled ``every`` seconds apart from ``start`` (each placed just
    before, when ``placed``)."""
    frames = []
    for n in range(count):
        at = start + every * n
        if placed:
            frames.append((at - 0.05, order_frame(f"o{n}", 0)))
        frames.append((at, order_frame(f"o{n}", 2)))
    return frames


RULES = """
[[rules]]
name = "filled"
on = "order.filled"
key = "{{ account }}/{{ order_id }}"
title = "filled {{ order_id }}"
message = "{{ side }} {{ amount }} {{ symbol }}"

[[rules]]
name = "placed"
on = "order.placed"
key = "{{ account }}/{{ order_id }}"
title = "placed {{ order_id }}"
message = "{{ side }} {{ amount }} {{ symbol }}"
"""


def replica_config(tmp_path: Path, name: str, *, database: str, ws: str, hook: str) -> Path:
    path = tmp_path / f"{name}.toml"
    path.write_text(
        f"""\
[daemon]
log_level = "info"
database = "{database}"
replica = "{name}"
delivery_lease = "{LEASE:g}s"

[[accounts]]
name = "px"
exchange = "piexgo"
url = "{ws}"
streams = ["pinfo"]

[channels]
hook = "{hook}"

[dispatch]
default_channel = "hook"
retry_initial = "200ms"
retry_max = "1s"
{RULES}"""
    )
    return path


@pytest.fixture
def server() -> Iterator[CaptureServer]:
    """Replica a is sent ``/a``'s frames, replica b ``/b``'s (set by each test first)."""
    frames: dict[str, list[tuple[float, str]]] = {"/a": [], "/b": []}
    capture = CaptureServer(frames=frames)
    yield capture
    capture.stop()


def start(
    procs: Procs, tmp_path: Path, names: str, *, url: str, server: CaptureServer, hook: str
) -> list[Proc]:
    """The replicas ``names`` (one letter each), started together, once each is ready."""
    daemons = []
    for name in names:
        config = replica_config(tmp_path, name, database=url, ws=server.url(f"/{name}"), hook=hook)
        state = tmp_path / f"state-{name}"
        daemons.append(procs.daemon(config, state_dir=state, name=f"alertd-{name}"))
    for daemon in daemons:
        daemon.wait_for_line(r"daemon\.ready ", START_TIMEOUT)
    return daemons


def titles(receiver: Receiver) -> collections.Counter[str]:
    return collections.Counter(p.title for p in receiver.delivered())


@pytest.mark.slow
def test_two_replicas_deliver_each_fill_exactly_once(
    procs: Procs, receiver: Receiver, postgres_url: str, tmp_path: Path, server: CaptureServer
) -> None:
    """Two replicas sent the same ten fills by one websocket server deliver ten
    notifications to the webhook, none twice."""
    server.frames["/a"] = server.frames["/b"] = fills(10, start=3.0)
    server.start()
    start(procs, tmp_path, "ab", url=postgres_url, server=server, hook=receiver.url())
    expected = {f"filled o{n}" for n in range(10)}
    wait_until(lambda: expected <= set(titles(receiver)), 30, "ten fills delivered")
    time.sleep(1.0)  # a second copy, if any, would have arrived by now
    assert titles(receiver) == dict.fromkeys(expected, 1)
    assert server.connections == {"/a": 1, "/b": 1}  # both replicas were sent every fill


@pytest.mark.slow
def test_a_silence_added_through_one_replica_mutes_another(
    procs: Procs,
    receiver: Receiver,
    postgres_url: str,
    tmp_path: Path,
    server: CaptureServer,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """``alertd silence add`` with replica a's config mutes the fills replica b is sent;
    the placements, not silenced, still arrive; ``alertd check`` finds the database."""
    server.frames["/b"] = fills(3, start=3.0, placed=True)
    server.start()
    config_a = replica_config(
        tmp_path, "a", database=postgres_url, ws=server.url("/a"), hook=receiver.url()
    )
    assert cli.main(["check", "-c", str(config_a)]) == 0
    assert capsys.readouterr().out.endswith("reachable, no alertd schema yet (created at start)\n")
    assert cli.main(["silence", "add", "-c", str(config_a), "--rule", "filled", "--for", "1h"]) == 0
    assert cli.main(["check", "-c", str(config_a)]) == 0
    assert capsys.readouterr().out.endswith(f"schema version {schema.VERSION} (as expected)\n")
    start(procs, tmp_path, "b", url=postgres_url, server=server, hook=receiver.url())
    placed = {f"placed o{n}" for n in range(3)}
    wait_until(lambda: placed <= set(titles(receiver)), 30, "three placements delivered")
    time.sleep(1.0)  # the fills came 50 ms after their placements
    assert set(titles(receiver)) == placed
    assert cli.main(["silence", "list", "-c", str(tmp_path / "b.toml")]) == 0
    assert "rule=filled" in capsys.readouterr().out


@pytest.mark.slow
def test_a_send_cut_by_sigkill_is_delivered_by_the_other_replica_marked(
    procs: Procs, receiver: Receiver, postgres_url: str, tmp_path: Path, server: CaptureServer
) -> None:
    """Replica a is SIGKILLed while the webhook holds its first fill; replica b delivers
    that one marked as a possible repeat and the two queued behind it unmarked, each once,
    about a lease later."""
    server.frames["/a"] = fills(3)
    server.start()
    receiver.hang = True
    a, _ = start(procs, tmp_path, "ab", url=postgres_url, server=server, hook=receiver.url())
    wait_until(receiver.snapshot, 30, "replica a's first POST")
    wait_until(  # the other two are queued behind it
        lambda: _pending(postgres_url) == 3, 10, "three rows queued"
    )
    a.send_signal(signal.SIGKILL)
    a.wait(10)
    killed = time.monotonic()
    with receiver.lock:
        receiver.hang = False
    wait_until(lambda: len(receiver.delivered()) >= 3, 6 * LEASE, "replica b's deliveries")
    took = time.monotonic() - killed
    time.sleep(1.0)
    assert titles(receiver) == {REPEAT + "filled o0": 1, "filled o1": 1, "filled o2": 1}
    assert LEASE * 0.5 <= took <= LEASE * 3, took
    assert _pending(postgres_url) == 0


def _pending(url: str) -> int:
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT count(*) FROM outbox WHERE status = 'pending'").fetchone()
    return int(row[0]) if row else 0


@pytest.mark.slow
def test_a_postgresql_restart_while_fills_flow_loses_and_doubles_nothing(
    procs: Procs,
    receiver: Receiver,
    postgres: PostgresServer,
    postgres_url: str,
    tmp_path: Path,
    server: CaptureServer,
) -> None:
    """Forty fills over ten seconds, the database restarted after the first is delivered:
    each of them arrives once, and the replica runs on, having tried again the calls the
    restart cut."""
    server.frames["/a"] = fills(40, start=3.0, every=0.25)
    server.start()
    [a] = start(procs, tmp_path, "a", url=postgres_url, server=server, hook=receiver.url())
    wait_until(receiver.delivered, 30, "the first fill delivered")
    postgres.restart()
    assert len(receiver.delivered()) < 40  # fills flow on after the restart
    expected = {f"filled o{n}" for n in range(40)}
    wait_until(lambda: expected <= set(titles(receiver)), 40, "forty fills", dump=a.tail)
    time.sleep(1.0)
    assert titles(receiver) == dict.fromkeys(expected, 1)
    assert a.returncode is None, a.tail()
    a.wait_for_line(r"store\.database_back ", 5)
