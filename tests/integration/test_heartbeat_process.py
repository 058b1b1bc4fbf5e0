"""The dead-man's switch of a real ``alertd run``: it pings a real HTTP service (speaking
healthchecks.io's protocol) while it runs, and goes silent when it is killed (SIGKILL) or
frozen (SIGSTOP) — the silence is what the service alerts on — and pings again once it is
let go on (SIGCONT)."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import pytest

from .conftest import START_TIMEOUT, Post, Proc, Procs, Receiver, Sim, config_text, wait_until

UUID = "0c9d2b7e-3f41-4a8e-b6d5-9e1f7a2c4b60"  # the check's secret part
SILENCE = 3.0  # seconds watched for pings that must not come (three intervals)

HEARTBEAT = """
[daemon.heartbeat]
url = "{env:HEARTBEAT_URL}"
interval = "1s"
timeout = "2s"
"""


def pings(receiver: Receiver) -> list[Post]:
    """What reached the heartbeat's path (the same service also takes the alerts)."""
    return [p for p in receiver.snapshot() if p.path.startswith(f"/ping/{UUID}")]


def start_pinging(procs: Procs, sim: Sim, receiver: Receiver, tmp_path: Path) -> Proc:
    """``alertd run`` with a heartbeat every second; returns once /start and a ping came."""
    config = tmp_path / "alertd.toml"
    config.write_text(config_text(sim_port=sim.port, hook=receiver.url(), daemon=HEARTBEAT))
    url = f"http://127.0.0.1:{receiver.port}/ping/{UUID}"
    daemon = procs.daemon(config, state_dir=tmp_path / "state", env={"HEARTBEAT_URL": url})

    def pinged() -> bool:
        if daemon.returncode is not None:
            daemon.join_output()
            raise AssertionError(f"alertd run exited ({daemon.returncode})\n{daemon.tail()}")
        return len(pings(receiver)) >= 2

    wait_until(pinged, START_TIMEOUT, "/start and a ping", dump=daemon.tail)
    start, ping = pings(receiver)[:2]
    assert (start.path, start.body["raw"]) == (f"/ping/{UUID}/start", "alertd started")
    assert ping.path == f"/ping/{UUID}" and "/2 accounts connected" in ping.body["raw"]
    return daemon


def pings_after(receiver: Receiver, moment: float) -> list[Post]:
    return [p for p in pings(receiver) if p.at > moment]


@pytest.mark.slow
def test_a_killed_daemon_stops_pinging(
    procs: Procs, sim: Sim, receiver: Receiver, tmp_path: Path
) -> None:
    """After SIGKILL no ping reaches the service, and the log never showed the ping URL."""
    daemon = start_pinging(procs, sim, receiver, tmp_path)
    daemon.send_signal(signal.SIGKILL)
    assert daemon.wait(10) == -signal.SIGKILL
    dead = time.monotonic()
    time.sleep(SILENCE)
    assert pings_after(receiver, dead) == []
    log = "\n".join(daemon.lines())
    assert f"heartbeat.start url=http://127.0.0.1:{receiver.port}/*** kind=healthchecks" in log
    assert UUID not in log


@pytest.mark.slow
def test_a_frozen_daemon_stops_pinging_and_pings_again_when_let_go_on(
    procs: Procs, sim: Sim, receiver: Receiver, tmp_path: Path
) -> None:
    """A SIGSTOPped daemon (hung, as far as anyone can tell) sends nothing; after SIGCONT
    the pings come back."""
    daemon = start_pinging(procs, sim, receiver, tmp_path)
    daemon.send_signal(signal.SIGSTOP)
    # A ping already in a worker thread may still land just after the signal.
    frozen = time.monotonic() + 0.5
    time.sleep(SILENCE)
    assert pings_after(receiver, frozen) == []
    assert daemon.returncode is None
    daemon.send_signal(signal.SIGCONT)
    let_go = time.monotonic()
    wait_until(lambda: pings_after(receiver, let_go), 5.0, "a ping after SIGCONT", dump=daemon.tail)
    assert pings_after(receiver, let_go)[0].path in (f"/ping/{UUID}", f"/ping/{UUID}/fail")
