"""The command line's own contract: --version, --help, and errors for bad arguments."""

import subprocess
import sys
from pathlib import Path

import pytest

from alertd import __version__
from alertd.cli import main


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "alertd", *args],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_version_prints_the_package_version() -> None:
    """`alertd --version` names the installed version."""
    result = run_cli("--version")
    assert result.returncode == 0
    assert result.stdout.strip() == f"alertd {__version__}"


def test_help_lists_every_command() -> None:
    """`alertd --help` documents every command of DESIGN.md."""
    result = run_cli("--help")
    assert result.returncode == 0
    for command in ("run", "check", "demo", "simulate", "replay", "test-notify", "silence"):
        assert command in result.stdout


def test_unknown_command_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    """A mistyped command exits 2 with a message naming the bad word."""
    with pytest.raises(SystemExit) as exc:
        main(["rnu"])
    assert exc.value.code == 2
    assert "rnu" in capsys.readouterr().err


def test_run_requires_a_config(monkeypatch: pytest.MonkeyPatch) -> None:
    """`alertd run` without -c, $ALERTD_CONFIG or the default file says the config is
    missing."""
    monkeypatch.delenv("ALERTD_CONFIG", raising=False)
    monkeypatch.setattr("alertd.cli.DEFAULT_CONFIG", "/nonexistent/alertd.toml")
    with pytest.raises(SystemExit) as exc:
        main(["run"])
    assert exc.value.code == 2


def test_output_cut_short_by_a_closed_pipe_is_not_a_traceback(tmp_path: Path) -> None:
    """`alertd ... | head` ends quietly when the reader leaves early, with no traceback."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "alertd", "simulate", "--list-scenarios"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stdout is not None
    proc.stdout.close()  # the reader is gone before alertd writes
    _, err = proc.communicate(timeout=60)
    assert b"Traceback" not in err
    assert proc.returncode in (0, 141)
