"""`alertd replay --diff OLD NEW CAPTURE`: the notifications one config sends over a capture
and the other does not, from two real replays of the daemon on the capture's clock."""

from __future__ import annotations

from pathlib import Path

import pytest

from alertd.cli import main

from .conftest import assert_clean_stderr

DATA = Path(__file__).resolve().parents[1] / "replay" / "data"
OLD = DATA / "config.toml"
CAPTURE = DATA / "piexgo.jsonl"


def _diff(capsys: pytest.CaptureFixture[str], old: Path, new: Path) -> tuple[int, str, str]:
    code = main(["replay", "--diff", str(old), str(new), str(CAPTURE)])
    out, err = capsys.readouterr()
    return code, out, err


def test_a_changed_rule_shows_what_it_no_longer_sends_and_what_it_now_sends(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Dropping the phone from one rule and raising another's threshold shows their
    notifications with "-", a new rule's with "+", and a summary counting both; exit 1."""
    text = OLD.read_text()
    text = text.replace('notify = ["phone", "desk"]', 'notify = ["desk"]')
    text = text.replace('where = "amount > 0.1"', 'where = "amount > 0.3"')
    text += '\n[[rules]]\nname = "placed"\non = "order.placed"\ntitle = "placed {{ order_id }}"\n'
    new = tmp_path / "new.toml"
    new.write_text(text)
    code, out, err = _diff(capsys, OLD, new)
    assert (code, err) == (1, "")
    lines = out.splitlines()
    removed = [line for line in lines if line.startswith("- ")]
    added = [line for line in lines if line.startswith("+ ")]
    assert "- 2019-06-05T11:39:40.000Z -> phone (warning)" in removed
    assert "-   title: px: buy BTC_USDT filled" in removed
    assert "- 2019-06-05T11:39:38.000Z -> desk (warning)" in removed
    assert "-   title: [px] trade BTC_USDT buy 0.2349 @ 4003.9" in removed
    assert not any("desk" in line and "filled" in line for line in removed)
    assert any(line.startswith("+   title: placed ") for line in added)
    assert all(line.startswith(("- ", "+ ")) for line in lines[:-1])
    only_old = sum(1 for line in removed if " -> " in line)
    only_new = sum(1 for line in added if " -> " in line)
    assert lines[-1].endswith(f"; {only_old} only in {OLD}, {only_new} only in {new}")


def test_the_same_rules_send_the_same(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A config that only reorders and comments its file sends the same notifications: no
    "-" or "+" line, exit 0."""
    new = tmp_path / "new.toml"
    new.write_text("# reviewed\n" + OLD.read_text())
    code, out, err = _diff(capsys, OLD, new)
    assert (code, err) == (0, "")
    [summary] = out.splitlines()
    assert summary.startswith(f"{OLD}: ")
    assert "; both send the same " in summary


def test_a_config_that_cannot_load_is_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A NEW config with a problem is reported with its line, nothing is replayed, exit 2."""
    new = tmp_path / "new.toml"
    new.write_text(OLD.read_text().replace('on = "order.filled"', 'on = "order.filed"'))
    code, out, err = _diff(capsys, OLD, new)
    assert code == 2
    assert out == ""
    assert_clean_stderr(err)
    assert f"{new}:" in err and "order.filed" in err


def test_events_and_diff_do_not_go_together(capsys: pytest.CaptureFixture[str]) -> None:
    """--events with --diff is a usage mistake, in one line."""
    with pytest.raises(SystemExit) as exc:
        main(["replay", "--diff", str(OLD), str(OLD), str(CAPTURE), "--events"])
    assert exc.value.code == 2
    assert_clean_stderr(capsys.readouterr().err, one_line=True)
