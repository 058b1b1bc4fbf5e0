"""Commands find their config without -c: $ALERTD_CONFIG, else /etc/alertd/alertd.toml (the
file the shipped unit runs); with neither, one line says what to do."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from alertd.cli import DEFAULT_CONFIG, config_path, main

from .conftest import EXAMPLE, assert_clean_stderr


def test_alertd_config_names_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`alertd check` with $ALERTD_CONFIG set and no -c checks that file."""
    config = tmp_path / "mine.toml"
    config.write_text(EXAMPLE.read_text())
    monkeypatch.setenv("ALERTD_CONFIG", str(config))
    assert main(["check", "--no-secrets"]) == 0
    assert capsys.readouterr().out.startswith(f"{config}: OK (")


def test_silence_list_finds_the_config_in_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`alertd silence list` without -c reads the state directory of $ALERTD_CONFIG's file."""
    config = tmp_path / "mine.toml"
    config.write_text(f'[daemon]\nstate_dir = "{tmp_path / "state"}"\n')
    monkeypatch.setenv("ALERTD_CONFIG", str(config))
    monkeypatch.delenv("STATE_DIRECTORY", raising=False)
    assert main(["silence", "list"]) == 0
    assert capsys.readouterr().out.strip() == "no active silences"


def test_c_wins_over_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """-c names the file even when $ALERTD_CONFIG names another."""
    monkeypatch.setenv("ALERTD_CONFIG", str(tmp_path / "missing.toml"))
    assert main(["check", "--no-secrets", "-c", str(EXAMPLE)]) == 0
    assert capsys.readouterr().out.startswith(f"{EXAMPLE}: OK (")


@pytest.mark.skipif(os.path.exists(DEFAULT_CONFIG), reason=f"{DEFAULT_CONFIG} exists here")
def test_without_any_config_one_line_names_the_default(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """With no -c, no $ALERTD_CONFIG and no /etc/alertd/alertd.toml, `alertd run` exits 2
    with one line naming all three."""
    monkeypatch.delenv("ALERTD_CONFIG", raising=False)
    with pytest.raises(SystemExit) as exc:
        main(["run"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert_clean_stderr(err, one_line=True)
    assert "-c CONFIG" in err
    assert "$ALERTD_CONFIG" in err
    assert DEFAULT_CONFIG in err


def test_the_default_path_is_used_when_it_exists(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The default file is read when neither -c nor $ALERTD_CONFIG is given, and only when it
    exists; the environment wins over it."""
    default = tmp_path / "etc" / "alertd.toml"
    monkeypatch.setattr("alertd.cli.DEFAULT_CONFIG", str(default))
    assert config_path(None, {}) is None
    default.parent.mkdir()
    default.write_text("")
    assert config_path(None, {}) == str(default)
    assert config_path(None, {"ALERTD_CONFIG": "/x.toml"}) == "/x.toml"
    assert config_path("given.toml", {"ALERTD_CONFIG": "/x.toml"}) == "given.toml"


def test_check_takes_the_file_once(capsys: pytest.CaptureFixture[str]) -> None:
    """`alertd check -c A B` names two files: one line says to check one at a time, exit 2."""
    with pytest.raises(SystemExit) as exc:
        main(["check", "-c", "a.toml", "b.toml"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert_clean_stderr(err, one_line=True)
    assert "two configs given (a.toml and b.toml)" in err
