"""`alertd silence` refuses every bad argument and config before it writes anything, and
`list` shows whatever the database holds without crashing."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import pytest

from alertd.cli import main

from .conftest import assert_clean_stderr

RULES = '[[rules]]\nname = "filled"\non = "order.filled"\nnotify = ["me"]\n'


@pytest.fixture
def config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.delenv("STATE_DIRECTORY", raising=False)
    path = tmp_path / "alertd.toml"
    path.write_text(f'[daemon]\nstate_dir = "{tmp_path / "state"}"\n\n{RULES}')
    return path


def _silence(config: Path, capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    action, *rest = argv
    code = main(["silence", action, "-c", str(config), *rest])
    out, err = capsys.readouterr()
    return code, out, err


def test_a_silence_too_long_for_the_calendar_is_refused_and_nothing_written(
    config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--for 99999999999d (a ValueError after writing, before) is refused in one line, and
    neither the state directory nor the database is created."""
    code, out, err = _silence(config, capsys, "add", "--rule", "filled", "--for", "99999999999d")
    assert code == 2
    assert out == ""
    assert err == (
        "alertd silence add: --for '99999999999d' is longer than a silence may last (at most "
        "3650d, ten years); to mute a rule for good, set enabled = false on it\n"
    )
    assert not (config.parent / "state").exists()


def test_the_longest_silence_is_taken_and_listed(
    config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A silence of exactly the limit is added and listed with its end date."""
    assert _silence(config, capsys, "add", "--rule", "filled", "--for", "3650d")[0] == 0
    code, out, _ = _silence(config, capsys, "list")
    assert code == 0
    assert "rule=filled" in out and "(active)" in out


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["--rule", "filled", "--for", "0s"], "--for must be longer than zero"),
        (["--rule", "filled", "--for", "soon"], '--for: "soon" is not a duration'),
        (["--rule", "", "--for", "1h"], "--rule is empty"),
        (["--rule", "  ", "--for", "1h", "--force"], "--rule is empty"),
        (["--rule", "filled", "--for", "1h", "--match", "=x"], "is not KEY=VALUE"),
        (["--rule", "nope", "--for", "1h"], "matches no rule"),
    ],
)
def test_bad_add_arguments_write_nothing(
    config: Path, capsys: pytest.CaptureFixture[str], argv: list[str], says: str
) -> None:
    """Each bad argument is refused with exit 2 and a message saying what, and no state is
    created."""
    code, out, err = _silence(config, capsys, "add", *argv)
    assert code == 2 and out == ""
    assert says in err
    assert_clean_stderr(err)
    assert not (config.parent / "state").exists()


def test_list_and_remove_create_no_state(config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Listing or removing before any silence exists answers without creating the database."""
    assert _silence(config, capsys, "list")[:2] == (0, "no active silences\n")
    code, _, err = _silence(config, capsys, "remove", "abcd")
    assert code == 1 and "no silence 'abcd'" in err
    assert not (config.parent / "state").exists()


def test_list_survives_rows_it_cannot_show_as_dates(
    config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A row an older alertd wrote with an end past year 9999 (the old --for 99999999999d)
    is listed, not a crash."""
    assert _silence(config, capsys, "add", "--rule", "filled", "--for", "1h")[0] == 0
    db = config.parent / "state" / "alertd.db"
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE silences SET ends = ?", (time.time() + 99999999999 * 86400,))
    code, out, err = _silence(config, capsys, "list")
    assert (code, err) == (0, "")
    assert "until a time past the calendar's end (active)" in out


def test_list_of_a_row_alertd_did_not_write_is_one_line(
    config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A hand-edited row (matchers not JSON) makes list say so in one line, exit 2."""
    assert _silence(config, capsys, "add", "--rule", "filled", "--for", "1h")[0] == 0
    with sqlite3.connect(config.parent / "state" / "alertd.db") as conn:
        conn.execute("UPDATE silences SET matchers = 'not json'")
    code, _, err = _silence(config, capsys, "list")
    assert code == 2
    assert "a row is not what alertd writes" in err
    assert_clean_stderr(err, one_line=True)


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("a = " + "{b = " * 450 + "1" + "}" * 450, "nested too deeply"),
        ("[daemon\n", "cannot read the config"),
        ("[daemon]\nstate_dir = 5\n", "state_dir must be a directory name"),
        ("daemon = 5\n", "[daemon] must be a table"),
    ],
)
def test_bad_config_is_one_line(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    text: str,
    says: str,
) -> None:
    """A config silence cannot read (nested 450 levels, bad TOML, a state_dir that is not a
    directory name) is one line and exit 2."""
    monkeypatch.delenv("STATE_DIRECTORY", raising=False)
    path = tmp_path / "alertd.toml"
    path.write_text(text)
    code, _, err = _silence(path, capsys, "list")
    assert code == 2
    assert says in err
    assert_clean_stderr(err, one_line=True)


def test_state_directory_that_is_a_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A state_dir that is a file cannot hold the database: one line, exit 2."""
    monkeypatch.delenv("STATE_DIRECTORY", raising=False)
    (tmp_path / "state").write_text("")
    path = tmp_path / "alertd.toml"
    path.write_text(f'[daemon]\nstate_dir = "{tmp_path / "state"}"\n\n{RULES}')
    code, _, err = _silence(path, capsys, "add", "--rule", "filled", "--for", "1h")
    assert code == 2
    assert "cannot open the state database" in err
    assert_clean_stderr(err, one_line=True)
