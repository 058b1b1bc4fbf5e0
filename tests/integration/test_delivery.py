"""Alerts from the simulator's activity reach a real webhook through the real daemon, and a
daemon killed with undelivered alerts delivers them after restart, none twice."""

from __future__ import annotations

import collections
import re
import signal
from pathlib import Path

import pytest

from .conftest import (
    START_TIMEOUT,
    NotifySocket,
    Procs,
    Receiver,
    Sim,
    config_text,
    wait_until,
)

FIRST_ALERT_TIMEOUT = 20.0
TITLE = re.compile(r"^filled (px|cr) \w+$")
MESSAGE = re.compile(r"^(buy|sell) \d+(\.\d+)? [A-Z]+_[A-Z]+ filled at \d+(\.\d+)?$")


@pytest.mark.slow
def test_an_order_fill_arrives_at_the_webhook(
    procs: Procs, sim: Sim, receiver: Receiver, notify: NotifySocket, tmp_path: Path
) -> None:
    """An order the simulator fills arrives as apprise's json:// POST with the rule's title and
    message rendered from the fill."""
    config = tmp_path / "alertd.toml"
    config.write_text(config_text(sim_port=sim.port, hook=receiver.url("hooks/alertd")))
    daemon = procs.daemon(config, state_dir=tmp_path / "state", notify=notify)
    notify.wait_for("READY", "1", timeout=START_TIMEOUT, dump=daemon.tail)

    [post, *_] = wait_until(receiver.delivered, FIRST_ALERT_TIMEOUT, "a POST", dump=daemon.tail)
    assert post.path == "/hooks/alertd"
    assert post.content_type.startswith("application/json")
    assert post.body["version"] == "1.0"
    assert TITLE.match(post.title), post.body
    assert MESSAGE.match(post.message), post.body


@pytest.mark.slow
def test_alerts_pending_at_sigkill_are_delivered_after_restart_once(
    procs: Procs, sim: Sim, receiver: Receiver, tmp_path: Path
) -> None:
    """Alerts the webhook refused (500) before the daemon was SIGKILLed arrive after a restart on
    the same state directory with no new exchange activity, and no alert arrives twice."""
    state = tmp_path / "state"
    config = tmp_path / "alertd.toml"
    config.write_text(config_text(sim_port=sim.port, hook=receiver.url()))
    first = procs.daemon(config, state_dir=state, name="alertd-run-1")
    wait_until(receiver.delivered, FIRST_ALERT_TIMEOUT, "a first delivery", dump=first.tail)

    receiver.status = 500
    delivered_before = len(receiver.delivered())

    def queued() -> int:
        return sum(int(m.group(1)) for m in first.matches(r"dispatch\.queued .* rows=(\d+)"))

    def refused_titles() -> set[str]:
        return {p.title for p in receiver.snapshot() if p.status == 500}

    # At least two alerts held in the outbox, and the webhook has refused at least two of them.
    wait_until(
        lambda: queued() >= delivered_before + 2 and len(refused_titles()) >= 2,
        FIRST_ALERT_TIMEOUT * 2,
        "two alerts refused by the webhook",
        dump=first.tail,
    )
    first.send_signal(signal.SIGKILL)
    assert first.wait(10) == -signal.SIGKILL
    pending_titles = refused_titles()
    total = queued()  # every alert that reached the outbox before the kill
    assert total > len(receiver.delivered())

    # Restart against an exchange that says nothing: only the outbox can produce deliveries.
    receiver.status = 200
    quiet = procs.simulator("quiet")
    config.write_text(config_text(sim_port=quiet.port, hook=receiver.url()))
    second = procs.daemon(config, state_dir=state, name="alertd-run-2")
    wait_until(
        lambda: len(receiver.delivered()) >= total,
        15,
        f"{total} deliveries in all",
        dump=second.tail,
    )
    # The drain on SIGTERM would send any row wrongly left pending: that shows up as a duplicate.
    second.wait_for_line(r"stream\.connected account=px", 10)
    second.send_signal(signal.SIGTERM)
    assert second.wait(15) == 0, second.tail()

    delivered = [p.title for p in receiver.delivered()]
    twice = [t for t, n in collections.Counter(delivered).items() if n > 1]
    assert twice == [], twice
    assert len(delivered) == total
    assert pending_titles <= set(delivered)
    assert second.matches(r"dispatch\.queued") == []
    assert second.matches(r"daemon\.stopped pending=0")
