"""How `alertd` answers what goes wrong: a usage mistake in one line (even one holding a
newline), a failure no command foresaw in one line with exit 70 and no secret, and its
traceback only when asked for with --log-level debug."""

from __future__ import annotations

import argparse

import pytest

from alertd.cli import COMMANDS, EXIT_INTERNAL, main

from .conftest import assert_clean_stderr


def _explode(args: argparse.Namespace) -> int:
    raise KeyError("hunter2-secret")


def _explode_in_a_group(args: argparse.Namespace) -> int:
    raise ExceptionGroup("nursery", [ZeroDivisionError("hunter2-secret")])


@pytest.mark.parametrize(
    "argv",
    [["check"], ["check", "-c"], ["nope\nrun"], ["simulate", "--port", "1\r\n2"], ["silence"]],
)
def test_usage_mistake_is_one_line(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    """argparse's answer is one line ending in the --help to read, exit 2, whatever control
    characters the arguments hold."""
    with pytest.raises(SystemExit) as exc:
        main(argv)
    err = capsys.readouterr().err
    assert exc.value.code == 2
    assert_clean_stderr(err, one_line=True)
    assert err.rstrip().endswith("--help)")


def test_failure_no_command_foresaw_is_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """An exception from inside a command is one line naming its type and where, exit 70
    (not 1 or 2, which mean the input is wrong), and never its text, which may hold a
    secret."""
    monkeypatch.setitem(COMMANDS, "check", f"{__name__}:_explode")
    assert main(["check", "-c", "x.toml"]) == EXIT_INTERNAL == 70
    err = capsys.readouterr().err
    assert_clean_stderr(err, one_line=True)
    assert err.startswith("alertd check: internal error: KeyError at test_cli_errors.py:")
    assert "--log-level debug" in err
    assert "hunter2" not in err


def test_failure_inside_an_exception_group_names_the_failure(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """trio's exception groups are opened: the line names the exception inside."""
    monkeypatch.setitem(COMMANDS, "simulate", f"{__name__}:_explode_in_a_group")
    assert main(["simulate"]) == EXIT_INTERNAL
    err = capsys.readouterr().err
    assert "internal error: ZeroDivisionError" in err
    assert "hunter2" not in err


def test_debug_log_level_shows_the_traceback(monkeypatch: pytest.MonkeyPatch) -> None:
    """With --log-level debug the exception goes on, for its traceback."""
    monkeypatch.setitem(COMMANDS, "check", f"{__name__}:_explode")
    with pytest.raises(KeyError):
        main(["--log-level", "debug", "check", "-c", "x.toml"])
