"""The shipped units under a real systemd (PID 1 of a container), against the simulator and a
webhook receiver running as units beside them: what a user relies on when alertd runs as a
service, each check through systemctl, the journal and /proc as an administrator would look.

The tests share one container and run in order: first alertd.service, then (after switching
to the template, as the README describes) several alertd@ instances at once. The slow checks
of the second part (the watchdog and the start limit, about 35 s each) run side by side.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator

import attrs
import pytest

from integration.conftest import wait_until

from .install import readme_install_commands
from .machine import RECEIVER_PORT, Machine, config_text

pytestmark = [pytest.mark.system, pytest.mark.slow, pytest.mark.timeout(420)]

MAIN = "alertd.service"
ALERT_TIMEOUT = 20.0  # the simulator fills an order every second or two at --rate 4
RESTART_SEC = 5.0  # the units' RestartSec=
WATCHDOG_SEC = 30.0  # the units' WatchdogSec=
SECRETS = {"alertd": "main-hook-secret", "desk1": "desk1-hook-secret", "desk2": "desk2-secret"}
DYNAMIC_UIDS = range(61184, 65520)  # systemd's range for DynamicUser=


def unit_secrets(machine: Machine) -> None:
    """Every unit's own credentials directory, all present at once (as on a real server)."""
    for unit_dir, secret in SECRETS.items():
        machine.put_secret(unit_dir, "hook_token", secret)


# -- alertd.service -------------------------------------------------------------------------


def test_start_returns_after_ready_with_the_status_line(machine: Machine) -> None:
    """The README's `systemctl enable --now alertd` returns once alertd sent READY=1 (with its
    status line), not when the process was spawned; `systemctl status` then shows "2/2
    accounts connected"."""
    unit_secrets(machine)
    machine.put_config("alertd", config_text("alertd", "v1"))
    readme = readme_install_commands()[-1]
    assert readme == "systemctl daemon-reload && systemctl enable --now alertd"
    machine.systemctl("daemon-reload")
    machine.systemctl("enable", "--now", "alertd")
    at_return = machine.show(
        MAIN,
        "ActiveState",
        "SubState",
        "StatusText",
        "ExecMainStartTimestampMonotonic",
        "ActiveEnterTimestampMonotonic",
    )
    assert (at_return["ActiveState"], at_return["SubState"]) == ("active", "running")
    # STATUS= came with READY=1: under Type=simple it would still be empty here.
    assert re.match(r"\d/2 accounts connected", at_return["StatusText"]), at_return
    spawned = int(at_return["ExecMainStartTimestampMonotonic"])
    active = int(at_return["ActiveEnterTimestampMonotonic"])
    assert active - spawned > 200_000, at_return  # usec: Python's start-up, then READY=1
    assert machine.box.run("systemctl", "is-enabled", "alertd").stdout.strip() == "enabled"

    machine.wait_prop(MAIN, "StatusText", r"^2/2 accounts connected", 15)
    assert 'Status: "2/2 accounts connected' in machine.status(MAIN)


def test_runs_as_a_dynamic_user_with_its_state_directory_and_only_its_own_credentials(
    machine: Machine,
) -> None:
    """alertd runs as the dynamic user "alertd", keeps its database in /var/lib/alertd (its
    own, mode 0700), receives exactly its own credentials (not the instances' ones kept
    beside them), and the credential reaches the channel without ever reaching the journal."""
    props = machine.show(MAIN, "MainPID", "UID", "User")
    uid = int(props["UID"])
    assert props["User"] == "alertd" and uid in DYNAMIC_UIDS, props
    status = machine.proc_status(int(props["MainPID"]))
    assert status["Uid"].split() == [str(uid)] * 4, status["Uid"]

    owner = machine.box.run("stat", "-c", "%u %a", "/var/lib/private/alertd").stdout.split()
    assert owner == [str(uid), "700"]
    assert machine.box.run("readlink", "/var/lib/alertd").stdout.strip() == "private/alertd"
    machine.box.run("test", "-s", "/var/lib/private/alertd/alertd.db")

    credentials = machine.box.run("ls", "-A", "/run/credentials/alertd.service").stdout.split()
    assert credentials == ["alertd_hook_token"]

    post = machine.wait_post("alertd", since=0, title="v1 ", timeout=ALERT_TIMEOUT)
    assert post.password == SECRETS["alertd"]
    assert SECRETS["alertd"] not in machine.journal(MAIN)


def test_runs_without_capabilities_new_privileges_or_unfiltered_system_calls(
    machine: Machine,
) -> None:
    """The kernel confirms the sandbox: no capability in any set, no_new_privs set, and a
    seccomp filter in force (mode 2)."""
    status = machine.proc_status(machine.main_pid(MAIN))
    for capabilities in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"):
        assert int(status[capabilities], 16) == 0, (capabilities, status[capabilities])
    assert status["NoNewPrivs"] == "1"
    assert status["Seccomp"] == "2"


def test_reload_applies_a_good_config_in_the_same_process(machine: Machine) -> None:
    """`systemctl reload` with a changed rule text delivers the new text, from the same PID,
    with no restart."""
    before = machine.show(MAIN, "MainPID", "NRestarts")
    machine.put_config("alertd", config_text("alertd", "v2"))
    reloaded = time.time()
    machine.systemctl("reload", "alertd")
    machine.wait_post("alertd", since=reloaded, title="v2 ", timeout=ALERT_TIMEOUT)
    assert machine.show(MAIN, "MainPID", "NRestarts") == before
    assert "reload.done" in machine.journal(MAIN)


def test_a_broken_reload_is_refused_and_the_old_config_goes_on(machine: Machine) -> None:
    """`systemctl reload` with a broken config keeps the running one (alerts keep coming with
    its text, same PID), `systemctl status` says why with the file's line, and reloading a
    fixed file clears the message."""
    pid = machine.main_pid(MAIN)
    good = config_text("alertd", "v2")
    broken = good.replace('name = "filled"', 'name = "filled"\nnotify = ["pager"]')
    line = broken.splitlines().index('notify = ["pager"]') + 1
    machine.put_config("alertd", broken)
    reloaded = time.time()
    machine.systemctl("reload", "alertd")

    status = machine.wait_prop(MAIN, "StatusText", "reload failed", 15)
    assert 'no channel named "pager"' in status, status
    assert "reload failed, previous config kept" in machine.status(MAIN)
    assert f"alertd.toml:{line} rules[0].notify: no channel named" in machine.journal(MAIN)
    machine.wait_post("alertd", since=reloaded, title="v2 ", timeout=ALERT_TIMEOUT)
    assert machine.main_pid(MAIN) == pid

    machine.put_config("alertd", config_text("alertd", "v3"))
    fixed = time.time()
    machine.systemctl("reload", "alertd")
    machine.wait_prop(MAIN, "StatusText", r"^(?!.*reload failed)\d/2 accounts connected", 15)
    machine.wait_post("alertd", since=fixed, title="v3 ", timeout=ALERT_TIMEOUT)
    assert machine.main_pid(MAIN) == pid


def test_a_killed_process_is_restarted(machine: Machine) -> None:
    """SIGKILL (as from the OOM killer) is followed, RestartSec later, by a new process that
    is ready again and delivering."""
    before = machine.show(MAIN, "MainPID", "NRestarts")
    killed = time.monotonic()  # the container shares this kernel's CLOCK_MONOTONIC
    machine.kill(before["MainPID"], "KILL")
    machine.wait_prop(MAIN, "NRestarts", rf"^{int(before['NRestarts']) + 1}$", RESTART_SEC + 15)
    machine.wait_prop(MAIN, "ActiveState", "^active$", 15)
    after = machine.show(MAIN, "MainPID", "ExecMainStartTimestampMonotonic")
    assert after["MainPID"] != before["MainPID"]
    assert int(after["ExecMainStartTimestampMonotonic"]) / 1e6 - killed >= RESTART_SEC
    assert "status=9/KILL" in machine.journal(MAIN)
    machine.wait_post("alertd", since=time.time(), title="v3 ", timeout=ALERT_TIMEOUT)


def test_stop_drains_the_outbox_and_exits_cleanly(machine: Machine) -> None:
    """`systemctl stop` while the webhook is slow waits for the alert in flight to be
    delivered, then the process exits 0 and the unit is inactive, not failed."""
    with machine.slow_receiver(2.0):
        seen = machine.arrivals()
        wait_until(lambda: machine.arrivals() > seen, ALERT_TIMEOUT, "a POST in flight")
        stop = time.time()
        machine.systemctl("stop", "alertd")
        took = time.time() - stop

    after = machine.show(MAIN, "ActiveState", "Result", "ExecMainCode", "ExecMainStatus")
    assert after == {
        "ActiveState": "inactive",
        "Result": "success",
        "ExecMainCode": "1",  # CLD_EXITED: it exited by itself, it was not killed
        "ExecMainStatus": "0",
    }
    journal = machine.journal(MAIN)
    assert "daemon.stopping phase=drain" in journal
    assert "daemon.stopped pending=0" in journal.split("daemon.stopping phase=drain")[-1]
    # The drain waited for a POST that was still being answered when the stop began.
    assert [p for p in machine.posts("alertd") if p.answered > stop], machine.posts("alertd")
    assert took < 10 + 5, took  # drain_timeout, plus the process's own teardown


# -- alertd@NAME instances ------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class Instances:
    """What the instance phase started, and when."""

    hung_pid: int  # alertd@hung, stopped with SIGSTOP right after it was ready
    hung_at: float  # monotonic
    busy_at: float  # monotonic: alertd@busy started (its metrics port is taken)


@pytest.fixture(scope="module")
def instances(machine: Machine) -> Iterator[Instances]:
    """Switch from alertd.service to instances (the README's steps), start desk1 and desk2, a
    `hung` instance frozen with SIGSTOP, and a `busy` one that cannot start (its metrics
    port is the receiver's), so that the watchdog and the start limit take their time side by
    side while the other checks run."""
    machine.box.sh(
        "systemctl disable --now alertd; rm -f /var/lib/alertd; rm -rf /var/lib/private/alertd"
    )
    for name in ("desk1", "desk2", "hung", "busy", "broken"):
        if name not in SECRETS:
            machine.put_secret(name, "hook_token", f"{name}-secret")
        machine.put_config(name, config_text(name, name))
    machine.put_config(
        "busy", config_text("busy", "busy", daemon=f'metrics_listen = "127.0.0.1:{RECEIVER_PORT}"')
    )
    machine.systemctl("enable", "--now", "alertd@desk1", "alertd@desk2", "alertd@hung")
    hung_pid = machine.main_pid("alertd@hung")
    machine.kill(hung_pid, "STOP")
    hung_at = time.monotonic()
    machine.systemctl("start", "--no-block", "alertd@busy")
    yield Instances(hung_pid=hung_pid, hung_at=hung_at, busy_at=time.monotonic())


def in_sandbox_of(machine: Machine, unit: str, code: str, *args: str) -> str:
    """Run python ``code`` as ``unit``'s user, inside its user and mount namespaces (where
    its PrivateUsers= and ProtectSystem= apply); returns what it printed."""
    props = machine.show(unit, "MainPID", "UID")
    pid, uid = props["MainPID"], props["UID"]
    return machine.box.run(
        "nsenter",
        f"--target={pid}",
        "--user",
        "--mount",
        f"--setuid={uid}",
        f"--setgid={uid}",
        "python3",
        "-c",
        code,
        *args,
    ).stdout.strip()


SIGNAL_PROBE = """
import os, sys
try:
    os.kill(int(sys.argv[1]), 0)
    print("signalled")
except PermissionError:
    print("refused")
"""

READ_PROBE = """
import sys
try:
    open(sys.argv[1], "rb").close()
    print("read")
except PermissionError:
    print("refused")
except FileNotFoundError:
    print("hidden")
"""


def test_instances_are_users_of_their_own_that_cannot_touch_each_other(
    machine: Machine, instances: Instances
) -> None:
    """alertd@desk1 and alertd@desk2 run side by side as different dynamic users: each has its
    own state directory and exactly its own credential (which reaches its channel), and
    neither can signal the other or open the other's database."""
    desk1, desk2 = "alertd@desk1", "alertd@desk2"
    props = {unit: machine.show(unit, "MainPID", "UID", "User") for unit in (desk1, desk2)}
    assert props[desk1]["UID"] != props[desk2]["UID"], props
    assert props[desk1]["User"] == "alertd-desk1" and props[desk2]["User"] == "alertd-desk2"

    for unit, name in ((desk1, "desk1"), (desk2, "desk2")):
        owner = machine.box.run("stat", "-c", "%u %a", f"/var/lib/private/alertd/{name}")
        assert owner.stdout.split() == [props[unit]["UID"], "700"]
        credentials = f"/run/credentials/{unit}.service"
        assert machine.box.run("ls", "-A", credentials).stdout.split() == ["alertd_hook_token"]
        post = machine.wait_post(name, since=0, title=f"{name} ", timeout=ALERT_TIMEOUT)
        assert post.password == SECRETS[name]

    for me, other, name in ((desk1, desk2, "desk2"), (desk2, desk1, "desk1")):
        assert in_sandbox_of(machine, me, SIGNAL_PROBE, props[other]["MainPID"]) == "refused"
        database = f"/var/lib/private/alertd/{name}/alertd.db"
        assert in_sandbox_of(machine, me, READ_PROBE, database) in ("refused", "hidden")
    # The probe itself works: an instance may signal itself.
    assert in_sandbox_of(machine, desk1, SIGNAL_PROBE, props[desk1]["MainPID"]) == "signalled"


def test_a_config_that_cannot_load_leaves_the_unit_failed_at_once(
    machine: Machine, instances: Instances
) -> None:
    """An instance whose config does not parse fails its start, exit status 2, and stays
    failed past RestartSec (no restart can fix a config), with the error once in the journal
    and in `systemctl status`."""
    unit = "alertd@broken"
    machine.box.write("/etc/alertd/broken.toml", config_text("broken", "x") + "\n[daemon\n")
    started = machine.box.run("systemctl", "start", unit, check=False)
    assert started.returncode != 0
    assert f"Job for {unit}.service failed" in started.stderr
    failed = {"ActiveState": "failed", "ExecMainStatus": "2", "NRestarts": "0"}
    assert machine.show(unit, *failed) == failed
    time.sleep(RESTART_SEC + 2)
    assert machine.show(unit, *failed) == failed

    error = re.compile(r"broken\.toml:\d+:\d+: ")
    assert len(error.findall(machine.journal(unit))) == 1, machine.journal(unit)
    assert error.search(machine.status(unit)), machine.status(unit)


def test_a_hung_process_is_restarted_by_the_watchdog(
    machine: Machine, instances: Instances
) -> None:
    """A process that stops answering (SIGSTOP) misses its watchdog pings: WatchdogSec later
    systemd kills it, and RestartSec after that a new process is ready."""
    unit = "alertd@hung"
    limit = WATCHDOG_SEC + RESTART_SEC + 25  # + the new process's start-up, on a busy machine
    left = limit - (time.monotonic() - instances.hung_at)
    machine.wait_prop(unit, "NRestarts", "^1$", left)
    machine.wait_prop(unit, "ActiveState", "^active$", 15)
    took = time.monotonic() - instances.hung_at
    assert machine.main_pid(unit) != instances.hung_pid
    journal = machine.journal(unit)
    assert "Watchdog timeout" in journal
    assert "Failed with result 'watchdog'" in journal
    # The last ping may have come just before SIGSTOP: the timeout counts from that ping.
    assert WATCHDOG_SEC / 2 + RESTART_SEC - 1 < took < limit, took


def test_a_start_that_keeps_failing_ends_at_the_start_limit(
    machine: Machine, instances: Instances
) -> None:
    """An instance that exits 1 at every start (its metrics port is taken) is restarted, but
    not forever: after 5 starts the unit is failed, and the journal says why."""
    unit = "alertd@busy"
    # Each try is RestartSec plus alertd's start-up, which a loaded machine stretches.
    left = 5 * (RESTART_SEC + 15) - (time.monotonic() - instances.busy_at)
    machine.wait_prop(unit, "ActiveState", "^failed$", left)
    assert machine.prop(unit, "NRestarts") in ("4", "5")
    journal = machine.journal(unit)
    assert "Start request repeated too quickly" in journal
    assert len(re.findall(r"^alertd: metrics: cannot listen on", journal, re.M)) == 5
    time.sleep(RESTART_SEC + 1)
    assert machine.prop(unit, "ActiveState") == "failed"
