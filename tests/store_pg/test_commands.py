"""The commands with ``[daemon] database`` set, when the database cannot be used: one line
naming the server and the cause, never a traceback or the password."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
import trio

from alertd import cli
from alertd.check import load_config
from alertd.daemon.app import Daemon, StartupError


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _config(tmp_path: Path, database: str) -> Path:
    path = tmp_path / "alertd.toml"
    path.write_text(f'[daemon]\ndatabase = "{database}"\n')
    return path


def test_check_says_in_one_line_that_the_database_is_unreachable(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """``alertd check`` on a config whose database does not answer exits 1 with one line
    naming host and port, and not the password."""
    port = _closed_port()
    monkeypatch.setenv("PGPW_TEST", "pw-LEAKCHECK")
    config = _config(tmp_path, f"postgresql://alertd:{{env:PGPW_TEST}}@127.0.0.1:{port}/alertd")
    assert cli.main(["check", "-c", str(config)]) == 1
    out = capsys.readouterr()
    [line] = out.err.splitlines()
    assert f"cannot reach the database 127.0.0.1:{port}/alertd" in line
    assert "LEAKCHECK" not in out.err + out.out


def test_silence_needs_the_database_password_reference_set(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """``alertd silence list`` with an unset password variable says which, in one line, and
    exits 2 without touching any database."""
    monkeypatch.delenv("PGPW_UNSET", raising=False)
    config = _config(tmp_path, "postgresql://alertd:{env:PGPW_UNSET}@127.0.0.1:1/alertd")
    assert cli.main(["silence", "list", "-c", str(config)]) == 2
    [line] = capsys.readouterr().err.splitlines()
    assert "PGPW_UNSET is not set" in line and "[daemon] database" in line


async def test_the_daemon_refuses_to_start_without_its_database(tmp_path: Path) -> None:
    """A daemon whose database does not answer fails to start at once (``alertd run``
    prints this one line and exits 1), naming the server and the setting."""
    port = _closed_port()
    config = load_config(_config(tmp_path, f"postgresql://alertd@127.0.0.1:{port}/alertd"))
    daemon = Daemon(config=config, state_dir=tmp_path, handle_signals=False)
    with trio.fail_after(20), pytest.raises(StartupError) as failed:
        await daemon.run()
    [line] = str(failed.value).splitlines()
    assert line.startswith(f"cannot reach the database 127.0.0.1:{port}/alertd: ")
    assert line.endswith("([daemon] database)")
