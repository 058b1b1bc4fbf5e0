"""A dead replica's grouped alerts, as real ``alertd run`` processes on a real PostgreSQL
server: the alerts it held in a group (``group_wait``) when it was SIGKILLed are adopted by
a live replica about a lease later and sent by it, once; what it had already sent is not
sent again."""

from __future__ import annotations

import collections
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from integration.conftest import START_TIMEOUT, CaptureServer, Procs, Receiver, wait_until
from store_pg.test_replicas import LEASE, fills, replica_config, titles

GROUP_WAIT = 4.0  # seconds: [dispatch] group_wait of these replicas


@pytest.fixture
def server() -> Iterator[CaptureServer]:
    """Replica a is sent ``/a``'s frames, replica b ``/b``'s (none)."""
    capture = CaptureServer(frames={"/a": [], "/b": []})
    yield capture
    capture.stop()


def _held(url: str) -> collections.Counter[str]:
    """The alerts in ``dispatch_alerts`` by state."""
    with psycopg.connect(url) as conn:
        return collections.Counter(r[0] for r in conn.execute("SELECT state FROM dispatch_alerts"))


@pytest.mark.slow
def test_a_sigkilled_replicas_grouped_alert_is_sent_by_another_once(
    procs: Procs, receiver: Receiver, postgres_url: str, tmp_path: Path, server: CaptureServer
) -> None:
    """Replica a sends its first fill after group_wait and is SIGKILLed while it holds the
    second in its group; replica b adopts the held one within a lease and a half and sends
    it group_wait later; each fill reaches the webhook once."""
    server.frames["/a"] = fills(1) + fills(2, start=1.5 + GROUP_WAIT + 0.5)[1:]
    server.start()
    daemons = {}
    for name in "ab":
        config = replica_config(
            tmp_path, name, database=postgres_url, ws=server.url(f"/{name}"), hook=receiver.url()
        )
        text = config.read_text().replace(
            "[dispatch]\n", f'[dispatch]\ngroup_wait = "{GROUP_WAIT:g}s"\n'
        )
        config.write_text(text)
        daemons[name] = procs.daemon(config, state_dir=tmp_path / f"state-{name}", name=name)
    for daemon in daemons.values():
        daemon.wait_for_line(r"daemon\.ready ", START_TIMEOUT)
    wait_until(lambda: titles(receiver), 30, "a sending its first fill")
    wait_until(lambda: _held(postgres_url)["held"] == 1, 10, "a holding the second")
    daemons["a"].send_signal(signal.SIGKILL)
    killed = time.monotonic()
    wait_until(lambda: len(receiver.delivered()) == 2, LEASE * 2 + GROUP_WAIT + 5, "b sending it")
    took = time.monotonic() - killed
    print(f"held alert sent {took:.2f}s after the SIGKILL (lease {LEASE:g}s)")
    assert took <= LEASE * 1.5 + GROUP_WAIT + 1.0
    assert daemons["b"].matches(r"dispatch\.adopted alerts=1 groups=1 ")
    time.sleep(1.0)  # time for a second copy, if one would come
    assert titles(receiver) == {"filled o0": 1, "filled o1": 1}
    assert _held(postgres_url) == {"sent": 2}
