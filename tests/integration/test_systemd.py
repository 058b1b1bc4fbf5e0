"""The real ``alertd run`` process as systemd sees it: sd_notify over a socket the test owns,
reload on SIGHUP (good and broken configs), and a draining stop on SIGTERM."""

from __future__ import annotations

import itertools
import re
import signal
import time
from pathlib import Path

import pytest

from alertd.messages.notices import POSSIBLE_REPEAT

from .conftest import (
    START_TIMEOUT,
    NotifySocket,
    Procs,
    Receiver,
    Sim,
    config_text,
    wait_until,
)

FIRST_ALERT_TIMEOUT = 20.0  # the simulator fills an order every few seconds


@pytest.mark.slow
def test_ready_status_and_watchdog_pings(
    procs: Procs, sim: Sim, receiver: Receiver, notify: NotifySocket, tmp_path: Path
) -> None:
    """READY=1 arrives after start, STATUS= reports the accounts as connected, and with
    WATCHDOG_USEC=2s a WATCHDOG=1 ping comes every second."""
    config = tmp_path / "alertd.toml"
    config.write_text(config_text(sim_port=sim.port, hook=receiver.url()))
    daemon = procs.daemon(
        config, state_dir=tmp_path / "state", notify=notify, env={"WATCHDOG_USEC": "2000000"}
    )

    ready = notify.wait_for("READY", "1", timeout=START_TIMEOUT, dump=daemon.tail)
    assert re.search(r"\d/2 accounts connected", ready.fields["STATUS"]), ready.fields
    notify.wait_for("STATUS", status="2/2 accounts connected", timeout=10, dump=daemon.tail)

    def pings_after_ready() -> list[float] | None:
        times = [n.at for n in notify.with_field("WATCHDOG", "1") if n.at >= ready.at]
        return times if len(times) >= 4 else None

    pings = wait_until(pings_after_ready, 6.0, "4 WATCHDOG=1 pings", dump=daemon.tail)
    gaps = [b - a for a, b in itertools.pairwise(pings)]
    # Half of WATCHDOG_USEC is 1 s; a gap near 2 s would already let systemd kill the service.
    assert all(0.5 < gap < 1.6 for gap in gaps[:3]), gaps
    assert daemon.returncode is None


@pytest.mark.slow
def test_broken_reload_keeps_the_daemon_running_and_alerting(
    procs: Procs, sim: Sim, receiver: Receiver, notify: NotifySocket, tmp_path: Path
) -> None:
    """SIGHUP with a broken config sends RELOADING=1 then READY=1 with the failure in STATUS=,
    names the file and line on stderr, and the old config goes on delivering alerts."""
    config = tmp_path / "alertd.toml"
    good = config_text(sim_port=sim.port, hook=receiver.url())
    config.write_text(good)
    daemon = procs.daemon(config, state_dir=tmp_path / "state", notify=notify)
    notify.wait_for("READY", "1", timeout=START_TIMEOUT, dump=daemon.tail)

    # Two problems: a rule that names a channel nobody defined, and a TOML syntax error would
    # hide the first, so the syntax error is the second attempt.
    broken = good.replace('name = "filled"', 'name = "filled"\nnotify = ["pager"]')
    line = broken.splitlines().index('notify = ["pager"]') + 1
    config.write_text(broken)
    hup = time.monotonic()
    daemon.send_signal(signal.SIGHUP)
    reloading = notify.wait_for("RELOADING", "1", timeout=10, after=hup, dump=daemon.tail)
    again = notify.wait_for(
        "READY", "1", timeout=10, after=reloading.at, status="reload failed", dump=daemon.tail
    )
    assert 'no channel named "pager"' in again.fields["STATUS"], again.fields
    daemon.wait_for_line(rf"alertd\.toml:{line} rules\[0\]\.notify: no channel named", 5)

    config.write_text(good + "\n[daemon\n")
    hup = time.monotonic()
    daemon.send_signal(signal.SIGHUP)
    again = notify.wait_for(
        "READY", "1", timeout=10, after=hup, status="reload failed", dump=daemon.tail
    )
    syntax_line = len(good.splitlines()) + 2
    daemon.wait_for_line(rf"alertd\.toml:{syntax_line}:\d+: ", 5)

    # Still the old config: alerts go on arriving, through the channel it had.
    seen = len(receiver.delivered())
    wait_until(
        lambda: len(receiver.delivered()) > seen,
        FIRST_ALERT_TIMEOUT,
        "an alert after the failed reloads",
        dump=daemon.tail,
    )
    assert daemon.returncode is None

    # Fixing the file clears the problem from the status line.
    config.write_text(good)
    hup = time.monotonic()
    daemon.send_signal(signal.SIGHUP)
    fixed = notify.wait_for("READY", "1", timeout=10, after=hup, dump=daemon.tail)
    assert "reload failed" not in fixed.fields["STATUS"], fixed.fields


@pytest.mark.slow
def test_good_reload_applies_without_reconnecting_unchanged_accounts(
    procs: Procs, sim: Sim, receiver: Receiver, notify: NotifySocket, tmp_path: Path
) -> None:
    """SIGHUP with a good config changes delivered messages and the channel's URL without a
    restart; the account whose settings did not change stays connected, the changed one
    reconnects."""
    config = tmp_path / "alertd.toml"
    config.write_text(config_text(sim_port=sim.port, hook=receiver.url()))
    daemon = procs.daemon(config, state_dir=tmp_path / "state", notify=notify)
    notify.wait_for("READY", "1", timeout=START_TIMEOUT, dump=daemon.tail)
    wait_until(lambda: sim.connects() == 2, 10, "both accounts connected", dump=sim.proc.tail)

    new_rules = """
[[rules]]
name = "filled"
on = "order.filled"
key = "{{ account }}/{{ order_id }}"
title = "v2 filled {{ account }} {{ order_id }}"
message = "v2: {{ side }} {{ amount }} {{ symbol }} filled at {{ price }}"
"""
    config.write_text(
        config_text(
            sim_port=sim.port,
            hook=receiver.url("v2"),
            rules=new_rules,
            cryptology_streams='["account", "trades.BTC_USD"]',
        )
    )
    hup = time.monotonic()
    daemon.send_signal(signal.SIGHUP)
    notify.wait_for("READY", "1", timeout=10, after=hup, dump=daemon.tail)
    daemon.wait_for_line(r"reload\.done ", 5)

    def new_text() -> list[str]:
        return [p.title for p in receiver.delivered() if p.at > hup and p.title.startswith("v2 ")]

    titles = wait_until(new_text, FIRST_ALERT_TIMEOUT, "an alert with the new text")
    for post in receiver.delivered():
        if post.title in titles:
            assert post.message.startswith("v2: ") and post.path == "/v2", post
    assert daemon.returncode is None
    # The changed account (cryptology: one more stream) reconnected once; Piexgo never did.
    wait_until(lambda: sim.connects("cryptology") == 2, 10, "cryptology reconnected")
    assert sim.connects("piexgo") == 1, sim.proc.tail()
    assert daemon.matches(r"sources\.restart account=px") == []
    assert len(daemon.matches(r"sources\.restart account=cr")) == 1


@pytest.mark.slow
def test_sigterm_drains_pending_alerts_and_exits_0(
    procs: Procs, sim: Sim, receiver: Receiver, notify: NotifySocket, tmp_path: Path
) -> None:
    """SIGTERM sent right after an alert fired, while the receiver is slow, still delivers it:
    STOPPING=1 goes out, the outbox drains, and the process exits 0 in bounded time."""
    receiver.delay = 0.8  # slow but answering
    config = tmp_path / "alertd.toml"
    config.write_text(config_text(sim_port=sim.port, hook=receiver.url(), drain_timeout="10s"))
    daemon = procs.daemon(config, state_dir=tmp_path / "state", notify=notify)
    notify.wait_for("READY", "1", timeout=START_TIMEOUT, dump=daemon.tail)

    daemon.wait_for_line(r"dispatch\.queued rule=filled ", FIRST_ALERT_TIMEOUT)
    term = time.monotonic()
    daemon.send_signal(signal.SIGTERM)
    assert daemon.wait(15) == 0, daemon.tail()
    took = time.monotonic() - term

    assert notify.with_field("STOPPING", "1"), notify.snapshot()
    queued = sum(int(m.group(1)) for m in daemon.matches(r"dispatch\.queued .* rows=(\d+)"))
    delivered = receiver.delivered()
    assert queued >= 1
    assert len(delivered) == queued, (queued, [p.title for p in delivered])
    assert len({p.title for p in delivered}) == len(delivered)
    # What fired just before the signal was still in flight (0.8 s per POST) when it came.
    assert any(p.at + receiver.delay > term for p in delivered)
    assert daemon.matches(r"daemon\.stopped pending=0")
    assert took < 10, took


@pytest.mark.slow
def test_sigterm_with_a_hanging_webhook_exits_after_the_drain_timeout(
    procs: Procs, sim: Sim, receiver: Receiver, notify: NotifySocket, tmp_path: Path
) -> None:
    """A webhook that never answers holds SIGTERM up only for drain_timeout (not for the
    channel's 30 s timeout): the daemon exits 0, and the alert goes out on the next start,
    marked as a possible repeat (the webhook had it in hand)."""
    receiver.hang = True
    state = tmp_path / "state"
    config = tmp_path / "alertd.toml"
    config.write_text(config_text(sim_port=sim.port, hook=receiver.url(), drain_timeout="2s"))
    daemon = procs.daemon(config, state_dir=state, notify=notify)
    notify.wait_for("READY", "1", timeout=START_TIMEOUT, dump=daemon.tail)
    [hung, *_] = wait_until(
        receiver.snapshot, FIRST_ALERT_TIMEOUT, "a POST that hangs", dump=daemon.tail
    )
    term = time.monotonic()
    daemon.send_signal(signal.SIGTERM)
    assert daemon.wait(40) == 0, daemon.tail()
    took = time.monotonic() - term
    assert took < 2 + 4, took  # drain_timeout plus process teardown, on a slow CI machine
    assert daemon.matches(r"daemon\.stopped pending=[1-9]")

    receiver.hang = False
    quiet = procs.simulator("quiet")
    config.write_text(config_text(sim_port=quiet.port, hook=receiver.url()))
    procs.daemon(config, state_dir=state, name="alertd-run-2")
    wait_until(
        # The webhook held that request when the stop came, so it may have got it: the copy
        # sent after the restart says so.
        lambda: [p for p in receiver.delivered() if p.title == POSSIBLE_REPEAT + hung.title],
        15,
        f"{hung.title!r} delivered (marked as a possible repeat) after the restart",
    )


@pytest.mark.slow
def test_a_second_stop_signal_cuts_the_drain_short(
    procs: Procs, sim: Sim, receiver: Receiver, notify: NotifySocket, tmp_path: Path
) -> None:
    """Ctrl-C starts a drain that a hanging webhook would keep going for drain_timeout; a
    SIGHUP meanwhile is declined, and a second stop signal ends the drain at once with exit 0."""
    receiver.hang = True
    config = tmp_path / "alertd.toml"
    config.write_text(config_text(sim_port=sim.port, hook=receiver.url(), drain_timeout="60s"))
    daemon = procs.daemon(config, state_dir=tmp_path / "state", notify=notify)
    notify.wait_for("READY", "1", timeout=START_TIMEOUT, dump=daemon.tail)
    wait_until(receiver.snapshot, FIRST_ALERT_TIMEOUT, "a POST that hangs", dump=daemon.tail)
    daemon.send_signal(signal.SIGINT)
    daemon.wait_for_line(r"daemon\.stopping phase=drain", 10)
    notify.wait_for("STOPPING", "1", timeout=5, dump=daemon.tail)
    # A reload request while draining is declined, not fatal (SIGHUP's default action).
    daemon.send_signal(signal.SIGHUP)
    daemon.wait_for_line(r"reload\.skipped", 5)
    assert daemon.returncode is None
    again = time.monotonic()
    daemon.send_signal(signal.SIGTERM)
    assert daemon.wait(10) == 0, daemon.tail()
    assert time.monotonic() - again < 4
    assert daemon.matches(r"daemon\.stop_now signal=SIGTERM")
