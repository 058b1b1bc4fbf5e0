"""The systemd units: what they promise, that scripts/check-systemd passes them and catches
broken ones, and that alertd's Python stack runs with MemoryDenyWriteExecute."""

from __future__ import annotations

import shutil
import subprocess
import sys
import textwrap
from collections import defaultdict
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CHECK = ROOT / "scripts" / "check-systemd"
UNITS = ROOT / "systemd"

needs_systemd_analyze = pytest.mark.skipif(
    shutil.which("systemd-analyze") is None,
    reason="systemd-analyze missing (scripts/check-systemd installs it in CI)",
)


def unit_settings(path: Path) -> dict[str, list[str]]:
    """``Key=value`` lines of a unit, every value of repeated keys in order."""
    settings: dict[str, list[str]] = defaultdict(list)
    for line in path.read_text().splitlines():
        if line and not line.startswith(("#", "[")):
            key, _, value = line.partition("=")
            settings[key].append(value)
    return settings


def run_check(unit_dir: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(CHECK), str(unit_dir)], capture_output=True, text=True, timeout=120, check=False
    )


@pytest.mark.parametrize("name", ["alertd.service", "alertd@.service"])
def test_units_keep_the_service_contract(name: str) -> None:
    """Both units are Type=notify with a watchdog, reload by SIGHUP (the shell's kill, which
    every system has), restart on failure but not on a config that cannot load (exit 2) nor
    beyond a start limit RestartSec can reach, and get state, config and credential
    directories from systemd under a dynamic user."""
    s = unit_settings(UNITS / name)
    assert s["Type"] == ["notify"]
    assert s["NotifyAccess"] == ["main"]
    assert s["ExecReload"] == ["/bin/sh -c 'kill -s HUP \"$MAINPID\"'"]
    assert s["WatchdogSec"] == ["30"]
    assert s["Restart"] == ["on-failure"]
    assert s["RestartSec"] == ["5s"]
    assert s["RestartPreventExitStatus"] == ["2"]
    # 5 starts at least RestartSec apart take 20 s or more: the limit must span longer.
    assert s["StartLimitBurst"] == ["5"]
    assert s["StartLimitIntervalSec"] == ["2min"]
    assert s["DynamicUser"] == ["yes"]
    assert s["ConfigurationDirectory"] == ["alertd"]
    assert s["LoadCredential"][0].startswith("alertd:/etc/alertd/credentials/")
    assert s["RestrictAddressFamilies"] == ["AF_UNIX AF_INET AF_INET6"]


def test_each_unit_loads_only_its_own_credentials_directory() -> None:
    """alertd.service reads /etc/alertd/credentials/alertd/ and alertd@NAME reads
    /etc/alertd/credentials/NAME/: systemd loads a directory with all its subdirectories, so
    no unit's directory holds another's (the old /etc/alertd/credentials/ held them all)."""
    assert unit_settings(UNITS / "alertd.service")["LoadCredential"] == [
        "alertd:/etc/alertd/credentials/alertd"
    ]
    assert unit_settings(UNITS / "alertd@.service")["LoadCredential"] == [
        "alertd:/etc/alertd/credentials/%i"
    ]


def test_template_gives_each_instance_its_own_config_state_secrets_and_user() -> None:
    """alertd@NAME reads /etc/alertd/NAME.toml and keeps state and credentials apart, as a
    dynamic user of its own (systemd would otherwise name every instance's user "alertd")."""
    s = unit_settings(UNITS / "alertd@.service")
    assert s["ExecStart"] == ["/usr/local/bin/alertd run -c %E/alertd/%i.toml"]
    assert s["StateDirectory"] == ["alertd/%i"]
    assert s["User"] == ["alertd-%i"]
    assert "User" not in unit_settings(UNITS / "alertd.service")  # the default: "alertd"


@needs_systemd_analyze
def test_shipped_units_pass_verify_and_security() -> None:
    """scripts/check-systemd passes both units and prints each exposure, all 2.0 or lower."""
    result = run_check(UNITS)
    assert result.returncode == 0, result.stdout + result.stderr
    scores = [
        float(line.split("exposure ")[1].split()[0])
        for line in result.stdout.splitlines()
        if "exposure" in line
    ]
    assert len(scores) == 3  # alertd, the template, and an instance of it
    assert all(score <= 2.0 for score in scores)


@needs_systemd_analyze
def test_a_misspelt_setting_fails_the_check(tmp_path: Path) -> None:
    """A typo systemd would silently ignore (it only warns) fails the check."""
    text = (UNITS / "alertd.service").read_text()
    (tmp_path / "alertd.service").write_text(text.replace("NoNewPrivileges=", "NoNewPrivilege="))
    result = run_check(tmp_path)
    assert result.returncode != 0
    assert "Unknown key 'NoNewPrivilege'" in result.stderr


@needs_systemd_analyze
def test_weak_hardening_fails_the_check(tmp_path: Path) -> None:
    """Dropping the sandbox raises exposure above 2.0, and the check says by how much."""
    kept = [
        line
        for line in (UNITS / "alertd.service").read_text().splitlines()
        if not line.startswith(("Protect", "Private", "SystemCall", "Capability"))
    ]
    (tmp_path / "alertd.service").write_text("\n".join(kept) + "\n")
    result = run_check(tmp_path)
    assert result.returncode != 0
    assert "FAIL security alertd.service: exposure" in result.stderr
    assert "is above 2.0" in result.stderr


MDWE_PROGRAM = textwrap.dedent(
    """
    import ctypes, mmap, sys
    PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN = 65, 1  # Linux >= 6.3
    if ctypes.CDLL(None).prctl(PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN, 0, 0, 0) != 0:
        sys.exit(77)
    try:
        mmap.mmap(-1, 4096, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)
        sys.exit("write+execute memory was allowed: the restriction is not in force")
    except OSError:
        pass
    import sqlite3, ssl
    import apprise, jinja2, msgspec, trio, trio_websocket
    import alertd.cli, alertd.daemon.logs, alertd.daemon.metrics, alertd.daemon.sdnotify

    async def main():
        await trio.sleep(0.01)
        await trio.to_thread.run_sync(lambda: None)

    trio.run(main)
    apprise.Apprise().add("json://127.0.0.1:9/hook")
    jinja2.Environment().from_string("{{ side }} {{ amount }}").render(side="buy", amount=1)
    msgspec.json.decode(b'{"a": 1}')
    sqlite3.connect(":memory:").execute("select 1")
    ssl.create_default_context()
    print("ok")
    """
)


def test_python_stack_runs_without_write_execute_memory() -> None:
    """MemoryDenyWriteExecute=yes is safe: with W+X mappings refused by the kernel (the same
    rule, via prctl), alertd's libraries import and a trio loop with threads runs."""
    result = subprocess.run(
        [sys.executable, "-c", MDWE_PROGRAM],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if result.returncode == 77:
        pytest.skip("kernel without PR_SET_MDWE (Linux < 6.3)")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"
