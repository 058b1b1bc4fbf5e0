"""`alertd status` asks a real `alertd run` on this machine, through its owner-only control
socket, how it is: accounts, outbox, silences, last notifications sent, heartbeat; and says
in one line when no daemon runs."""

from __future__ import annotations

import json
import os
import shutil
import signal
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from alertd.cli import main
from alertd.commands.status import format_answer
from alertd.daemon.control import request_status
from integration import conftest as it

from .conftest import assert_clean_stderr

# the integration tests' real processes and webhook receiver
procs, receiver = it.procs, it.receiver

UP_RULE = """
[[rules]]
name = "up"
on = "stream.connected"
title = "up {{ account }}"
message = "{{ account }} connected"
"""


DAEMON = """timezone = "Europe/Berlin"

[daemon.heartbeat]
url = "{env:HEARTBEAT_URL}"
interval = "1s"
"""

RESTING = """
[[accounts]]
name = "resting"
exchange = "piexgo"
url = "ws://127.0.0.1:1/piexgo/ws"
enabled = false
"""


@pytest.fixture
def runtime_dir() -> Iterator[Path]:
    """A directory as systemd's RuntimeDirectory= would be, open for others to enter (unlike
    pytest's own), so that only the daemon's own checks keep another user out."""
    path = Path(tempfile.mkdtemp(prefix="alertd-runtime-"))
    path.chmod(0o755)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def _ask_as_nobody(path: Path) -> str:
    """What the daemon answers a status request from user 65534 (a forked child of this
    root process, which needs no interpreter of its own)."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: ask, hand the answer over, and leave without cleanup
        try:
            os.setgid(65534)
            os.setuid(65534)
            answer = json.dumps(request_status(path, timeout=10))
        except BaseException as exc:
            answer = f"client failed: {type(exc).__name__}"
        os.write(write, answer.encode())
        os._exit(0)
    os.close(write)
    with os.fdopen(read, "rb") as pipe:
        answer = pipe.read().decode()
    os.waitpid(pid, 0)
    return answer


def _alertd(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """A short command, in this process (the daemon it asks is a process of its own)."""
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.slow
def test_status_of_a_running_daemon(
    procs: it.Procs,
    receiver: it.Receiver,
    tmp_path: Path,
    runtime_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A running daemon answers with both accounts connected since a time in its configured
    timezone (the disabled one said so), the last notifications sent, the active silence and
    the heartbeat's healthy verdict, as text and as JSON; the socket is mode 0600 and gone
    once the daemon stopped."""
    # The socket is in $RUNTIME_DIRECTORY (here) or the state directory, found the same way
    # by both sides.
    sim = procs.simulator("normal", rate=4.0)
    state = tmp_path / "state"
    config = tmp_path / "alertd.toml"
    text = it.config_text(
        sim_port=sim.port, hook=receiver.url(), rules=UP_RULE, daemon=DAEMON
    ).replace("[channels]", f"{RESTING}\n[channels]")
    config.write_text(text.replace("/nonexistent/overridden-by-state-dir", str(state)))
    ping = f"http://127.0.0.1:{receiver.port}/ping/status-test"
    env = {"HEARTBEAT_URL": ping, "RUNTIME_DIRECTORY": str(runtime_dir)}
    daemon = procs.daemon(config, state_dir=state, env=env)
    for name in it.LEAKY_ENV:  # as the daemon's environment
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("RUNTIME_DIRECTORY", str(runtime_dir))
    daemon.wait_for_line(r"daemon\.ready", it.START_TIMEOUT)
    it.wait_until(lambda: len(receiver.delivered()) >= 2, it.START_TIMEOUT, "two 'up' alerts")
    muting = ["--rule", "up", "--match", "account=px", "--for", "1h", "--comment", "maintenance"]
    code, out, err = _alertd(capsys, "silence", "add", "-c", str(config), *muting)
    assert code == 0, err

    def answered() -> dict[str, object] | None:
        code, out, err = _alertd(capsys, "status", "-c", str(config), "--json")
        assert code == 0, err
        answer = json.loads(out)
        pinged = answer["heartbeat"] is not None and answer["heartbeat"]["sent"] >= 2
        return answer if len(answer["last_sent"]) >= 2 and pinged else None

    answer = it.wait_until(answered, it.START_TIMEOUT, "status naming two notifications sent")
    accounts = {a["name"]: a for a in answer["accounts"]}  # type: ignore[attr-defined]
    assert set(accounts) == {"px", "cr", "resting"}
    assert accounts.pop("resting")["enabled"] is False
    for account in accounts.values():
        assert account["connected"] is True
        assert account["connected_since"] is not None
        assert account["reconnects"] == 0
    assert {r["channel"] for r in answer["last_sent"]} == {"hook"}  # type: ignore[attr-defined]
    [silence] = answer["silences"]  # type: ignore[misc]
    assert (silence["rule"], silence["matchers"], silence["comment"]) == (
        "up", {"account": "px"}, "maintenance"
    )  # fmt: skip
    beat = answer["heartbeat"]
    assert (beat["healthy"], beat["failed"], beat["unreachable"]) == (True, 0, None)  # type: ignore[index]
    assert answer["pid"] == daemon.pid

    code, out, err = _alertd(capsys, "status", "-c", str(config))
    assert code == 0, err
    assert "px (piexgo): connected since " in out
    assert "cr (cryptology): connected since " in out
    assert " CET (" in out  # [daemon] timezone, named
    assert "hook  [warning] up " in out
    assert f"{silence['id']} rule=up account=px until " in out
    assert "(in 59m " in out or "(in 1h)" in out
    assert "# maintenance" in out
    assert "resting (piexgo): disabled" in out
    assert "heartbeat: healthy: 2/2 accounts connected" in out

    socket_file = runtime_dir / "control.sock"  # systemd's RuntimeDirectory= when given
    assert stat.S_IMODE(os.stat(socket_file).st_mode) == 0o600
    if os.getuid() == 0:  # another user is refused even where the file mode would let them in
        os.chmod(socket_file, 0o666)
        assert "permission denied" in _ask_as_nobody(socket_file)
    daemon.send_signal(signal.SIGTERM)
    assert daemon.wait(30) == 0
    assert not socket_file.exists()
    code, out, err = _alertd(capsys, "status", "-c", str(config))
    assert code == 1
    assert_clean_stderr(err, one_line=True)
    assert f"no alertd answers on {socket_file}" in err


def test_no_daemon_is_one_line_and_exit_1(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """With no daemon running, `alertd status` exits 1 with one line naming the socket."""
    monkeypatch.delenv("STATE_DIRECTORY", raising=False)
    monkeypatch.delenv("RUNTIME_DIRECTORY", raising=False)
    config = tmp_path / "alertd.toml"
    config.write_text(f'[daemon]\nstate_dir = "{tmp_path}"\n')
    assert main(["status", "-c", str(config)]) == 1
    err = capsys.readouterr().err
    assert_clean_stderr(err, one_line=True)
    assert err.startswith(f"alertd status: no alertd answers on {tmp_path / 'control.sock'}")


def test_an_unreadable_config_is_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A config that is not TOML stops `alertd status` with exit 2 and one line."""
    config = tmp_path / "alertd.toml"
    config.write_text("[daemon\n")
    assert main(["status", "-c", str(config)]) == 2
    assert_clean_stderr(capsys.readouterr().err, one_line=True)


def test_trouble_reads_at_a_glance() -> None:
    """A disconnected account, a backlog and an unreachable heartbeat service are each one
    line naming what, where and since when, in the daemon's timezone."""
    now = 1_764_633_600.0  # 2025-12-02 00:00 UTC
    answer = {
        "version": "0.1.0",
        "pid": 42,
        "started": now - 7500,
        "now": now,
        "timezone": "Asia/Tokyo",
        "status": "1/2 accounts connected (down: cr), 3 alerts pending, last alert 2m ago",
        "accounts": [
            {
                "name": "px",
                "exchange": "piexgo",
                "enabled": True,
                "connected": True,
                "connected_since": now - 3600,
                "last_frame": now - 2,
                "reconnects": 1,
            },
            {
                "name": "cr",
                "exchange": "cryptology",
                "enabled": True,
                "connected": False,
                "connected_since": None,
                "last_frame": now - 300,
                "reconnects": 4,
            },
        ],
        "outbox": {"pending": 3, "by_channel": {"desk": 2, "phone": 1}, "oldest_pending": now - 90},
        "delivery": {"delivered": 10, "failed": 5, "retries": 5, "expired": 0, "in_flight": 1},
        "silences": [],
        "last_sent": [],
        "heartbeat": {
            "healthy": False,
            "reason": "account cr disconnected",
            "sent": 7,
            "failed": 2,
            "unreachable": "connection refused",
        },
    }
    lines = format_answer(answer).splitlines()
    assert lines[0] == f"alertd 0.1.0 (pid 42), up 2h 5m: {answer['status']}"
    assert lines[2] == (
        "  px (piexgo): connected since 2025-12-02 08:00:00 JST (1h ago); last frame 2s ago; "
        "1 reconnect"
    )
    assert lines[3] == "  cr (cryptology): DISCONNECTED; last frame 5m ago; 4 reconnects"
    assert lines[4] == (
        "outbox: 3 pending (desk 2, phone 1), oldest due since 2025-12-02 08:58:30 JST (1m ago)"
    )
    assert "silences: none active" in lines
    assert "last sent: nothing yet" in lines
    assert lines[-1] == (
        "heartbeat: service unreachable (connection refused); 7 pings sent, 2 failed"
    )
