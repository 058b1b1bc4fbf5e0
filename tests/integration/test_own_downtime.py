"""alertd's own downtime, with real processes: ``alertd run`` against the simulator, killed
(SIGKILL) or stopped (SIGTERM), then started again on the same state directory, reports for
every account it was watching a ``stream.gap`` from its last healthy moment to the
reconnect, why ``alertd crashed`` or ``alertd stopped``; an account added meanwhile gets
none, and one removed is forgotten."""

from __future__ import annotations

import re
import signal
import time
from datetime import datetime
from pathlib import Path

import pytest

from .conftest import START_TIMEOUT, Proc, Procs, Receiver, Sim, config_text, wait_until

GAP_RULE = """
[[rules]]
name = "blind"
on = "stream.gap"
title = "gap {{ account }} {{ why }}"
message = "down {{ down_for }}"
"""
GAP_LINE = r"stream\.gap account=(\w+) why=(alertd \w+) since=(\S+) until=(\S+) "
MARK_WAIT = 1.6  # seconds: more than one mark interval once connected


def config(
    tmp_path: Path, sim: Sim, receiver: Receiver, *, extra: str = "", cr: bool = True
) -> Path:
    """The two simulator accounts (without ``cr`` when told) plus ``extra`` accounts."""
    text = config_text(sim_port=sim.port, hook=receiver.url(), rules=extra + GAP_RULE)
    if not cr:
        text = re.sub(r"\[\[accounts\]\]\nname = \"cr\".*?\n\n", "", text, flags=re.S)
    path = tmp_path / "alertd.toml"
    path.write_text(text)
    return path


def px2(sim: Sim) -> str:
    return f"""
[[accounts]]
name = "px2"
exchange = "piexgo"
url = "{sim.url("piexgo")}"
streams = ["pinfo"]
"""


def start(procs: Procs, path: Path, tmp_path: Path, accounts: list[str], name: str) -> Proc:
    """``alertd run`` on the shared state directory, returned once every account is up."""
    daemon = procs.daemon(path, state_dir=tmp_path / "state", name=name)
    for account in accounts:
        daemon.wait_for_line(rf"stream\.connected account={account} ", START_TIMEOUT)
    return daemon


def gaps(daemon: Proc) -> dict[str, tuple[str, float, float]]:
    """The own-downtime gaps in ``daemon``'s log: account -> (why, since, until) (Unix s)."""
    return {
        m[1]: (
            m[2],
            datetime.fromisoformat(m[3]).timestamp(),
            datetime.fromisoformat(m[4]).timestamp(),
        )
        for m in daemon.matches(GAP_LINE)
    }


@pytest.mark.slow
def test_a_killed_alertd_reports_its_downtime_as_a_gap_on_start(
    procs: Procs, sim: Sim, receiver: Receiver, tmp_path: Path
) -> None:
    """After SIGKILL, the next start reports for px and cr a gap "alertd crashed" from at
    most a mark interval before the kill to the reconnect, delivered as an alert; px2, added
    while alertd was down, gets none."""
    first = start(procs, config(tmp_path, sim, receiver), tmp_path, ["px", "cr"], "run-1")
    time.sleep(MARK_WAIT)
    first.send_signal(signal.SIGKILL)
    killed = time.time()
    assert first.wait(10) == -signal.SIGKILL
    time.sleep(1.0)
    second = start(
        procs,
        config(tmp_path, sim, receiver, extra=px2(sim)),
        tmp_path,
        ["px", "cr", "px2"],
        "run-2",
    )
    restarted = time.time()
    found = wait_until(
        lambda: len(gaps(second)) >= 2 and gaps(second), 10, "two gaps", dump=second.tail
    )
    assert set(found) == {"px", "cr"}
    for account, (why, since, until) in found.items():
        assert why == "alertd crashed", account
        assert killed - 1.5 < since < killed, (account, since - killed)
        assert killed + 1.0 < until < restarted + 1.0, (account, until - killed)

    def gap_titles() -> list[str]:
        return sorted(p.title for p in receiver.delivered() if p.title.startswith("gap "))

    wait_until(lambda: len(gap_titles()) >= 2, 10, "the two gap alerts", dump=second.tail)
    assert gap_titles() == ["gap cr alertd crashed", "gap px alertd crashed"]
    time.sleep(0.5)
    assert "px2" not in gaps(second)


@pytest.mark.slow
def test_a_stopped_alertd_reports_the_exact_stop_and_forgets_removed_accounts(
    procs: Procs, sim: Sim, receiver: Receiver, tmp_path: Path
) -> None:
    """After SIGTERM, the next start reports a gap "alertd stopped" from the moment the
    stop began (between the signal and the exit); cr, removed in between, is forgotten: a
    third start with cr back gives cr no gap."""
    first = start(procs, config(tmp_path, sim, receiver), tmp_path, ["px", "cr"], "run-1")
    time.sleep(MARK_WAIT)
    signalled = time.time()
    first.send_signal(signal.SIGTERM)
    assert first.wait(15) == 0
    exited = time.time()
    second = start(procs, config(tmp_path, sim, receiver, cr=False), tmp_path, ["px"], "run-2")
    found = wait_until(lambda: gaps(second).get("px"), 10, "px's gap", dump=second.tail)
    why, since, _ = found
    assert why == "alertd stopped" and signalled - 0.05 < since < exited, since - signalled
    second.send_signal(signal.SIGTERM)
    assert second.wait(15) == 0
    third = start(procs, config(tmp_path, sim, receiver), tmp_path, ["px", "cr"], "run-3")
    wait_until(lambda: gaps(third).get("px"), 10, "px's gap again", dump=third.tail)
    time.sleep(0.5)
    assert "cr" not in gaps(third)
