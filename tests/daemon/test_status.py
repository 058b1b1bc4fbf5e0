"""The STATUS= line a person reads in `systemctl status alertd`."""

from __future__ import annotations

import pytest

from alertd.daemon.status import format_age, format_status


def test_all_well_reads_as_in_the_docs() -> None:
    """The healthy line names accounts connected, alerts pending and the last alert's age."""
    line = format_status(connected=3, accounts=3, pending=0, last_alert_age=150)
    assert line == "3/3 accounts connected, 0 alerts pending, last alert 2m ago"


def test_singulars_and_no_alert_yet() -> None:
    """One account and one alert are singular; before any alert it says so."""
    line = format_status(connected=1, accounts=1, pending=1, last_alert_age=None)
    assert line == "1/1 account connected, 1 alert pending, no alerts yet"


def test_down_accounts_are_named_and_capped() -> None:
    """Disconnected accounts are named, at most three, so the line stays short."""
    line = format_status(
        connected=1, accounts=5, pending=2, last_alert_age=5, down=["a", "b", "c", "d"]
    )
    assert line == (
        "1/5 accounts connected (down: a, b, c +1 more), 2 alerts pending, last alert 5s ago"
    )


def test_a_problem_comes_first_on_one_line() -> None:
    """A failed reload leads the line, newlines flattened and long text cut."""
    problem = "reload failed: alertd.toml:14 rules[2].cooldown:\n" + "x" * 300
    line = format_status(connected=2, accounts=2, pending=0, last_alert_age=None, problem=problem)
    assert line.startswith("reload failed: alertd.toml:14 rules[2].cooldown: xxx")
    assert "\n" not in line
    assert line.endswith("…; 2/2 accounts connected, 0 alerts pending, no alerts yet")
    assert len(line) < 250


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (-3, "just now"),
        (0.4, "just now"),
        (59.9, "59s ago"),
        (60, "1m ago"),
        (3599, "59m ago"),
        (7200, "2h ago"),
        (86400 * 3 + 5, "3d ago"),
    ],
)
def test_ages_round_down_to_one_unit(seconds: float, text: str) -> None:
    """Ages show the largest whole unit; a clock step backwards reads as just now."""
    assert format_age(seconds) == text
