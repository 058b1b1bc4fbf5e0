"""Random argument lists through every command (`alertd.cli.main(argv)`): exit 0, 1 or 2,
never a traceback or a hang, and a usage mistake answered in one line. Each list ends with
arguments that keep a command from starting anything long-running (a config that cannot be
used, a port already taken), so `run`, `demo` and `replay` go through argparse and the config
loading only, and `simulate` through its listen."""

from __future__ import annotations

import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from alertd.check import read_config
from alertd.cli import COMMANDS, build_parser, main

from .conftest import REPO, assert_clean_stderr

OPTIONS = [
    "-c", "--config", "--record", "--state-dir", "--duration", "--seed", "--port", "--host",
    "--scenario", "--rate", "--list-scenarios", "--events", "--rule", "--match", "--for",
    "--comment", "--force", "--all", "--log-level", "add", "list", "remove", "-", "--", "-x",
    "--nope", "-h", "check", "run",
]  # fmt: skip
VALUES = [
    "0", "-1", "1", "3", "nan", "inf", "-inf", "1e999", "abc", "", " ", "70000", "9" * 40,
    "2h", "99999999999d", "0s", "5 mins", "1w", "a=b", "=", "account=main", "=x", "key=",
    "price-*", "filled", "ü", "debug", "info", "trace", "normal", "nromal", "flood",
    "127.0.0.1", "x" * 300, "deadbeef",
]  # fmt: skip
# `--log-level debug` makes an internal error show its traceback, which is what the test
# must see if there is one; "debug" is among the values, so it happens.


@contextmanager
def no_hang(seconds: float) -> Iterator[None]:
    """Fail instead of waiting when the block takes longer than ``seconds``."""

    def alarm(signum: int, frame: FrameType | None) -> None:
        raise TimeoutError(f"the command did not answer within {seconds}s")

    previous = signal.signal(signal.SIGALRM, alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


@st.composite
def argv(draw: st.DrawFn, paths: list[str]) -> list[str]:
    """A command name followed by up to eight words: options, values, bad config paths."""
    command = draw(st.sampled_from(sorted(COMMANDS)))
    words = st.sampled_from(OPTIONS) | st.sampled_from(VALUES) | st.sampled_from(paths)
    rest = draw(st.lists(words | st.text(max_size=12), max_size=8))
    head = ["--log-level", draw(st.sampled_from(["debug", "info"]))] if draw(st.booleans()) else []
    return [*head, command, *rest]


def _safety(args: list[str], bad: str, port: int) -> list[str]:
    """``args`` with the tail that keeps its command from starting anything long-running."""
    command = next(a for a in args if a in COMMANDS)
    if command == "simulate":
        return [*args, "--host", "127.0.0.1", "--port", str(port)]
    return [*args, "--config" if command == "demo" else "-c", bad]


def _run_main(args: list[str]) -> int:
    try:
        with no_hang(20):
            return main(args)
    except SystemExit as exc:  # argparse: --help, --version, usage mistakes
        return int(exc.code or 0)


FUZZ = settings(
    max_examples=120,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@FUZZ
@given(data=st.data())
def test_random_arguments_through_every_command(
    data: st.DataObject,
    bad_configs: dict[str, Path],
    busy_port: int,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Whatever the arguments, every command answers with 0, 1 or 2 and clean stderr lines;
    a usage mistake (argparse) is one line."""
    monkeypatch.delenv("STATE_DIRECTORY", raising=False)
    paths = [str(p) for p in bad_configs.values()]
    args = _safety(data.draw(argv(paths)), data.draw(st.sampled_from(paths)), busy_port)
    code = _run_main(args)
    err = capsys.readouterr().err
    assert code in (0, 1, 2), (args, err)
    assert_clean_stderr(err)
    if code == 2 and err.startswith("alertd") and "(see alertd" in err:
        assert len(err.splitlines()) == 1, (args, err)


@FUZZ
@given(data=st.data())
def test_random_arguments_through_the_parser_and_config_loading(
    data: st.DataObject, bad_configs: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    """Without the safety tail, for every command: argparse answers 0 (help) or 2 in one
    line, and whatever config path it accepts, loading that config gives problems, never an
    exception or a hang."""
    args = data.draw(argv([str(p) for p in bad_configs.values()]))
    try:
        parsed = build_parser().parse_args(args)
    except SystemExit as exc:
        _, err = capsys.readouterr()
        assert exc.code in (0, 2)
        assert_clean_stderr(err, one_line=exc.code == 2)
        return
    config = getattr(parsed, "config", None)
    if config is not None:
        with no_hang(20):
            loaded, problems = read_config(config)
        assert loaded is None and problems


@settings(FUZZ, max_examples=3)
@given(data=st.data())
def test_random_arguments_through_a_real_process(
    data: st.DataObject, bad_configs: dict[str, Path], busy_port: int
) -> None:
    """The same through `python -m alertd` as a real process, bounded by a timeout."""
    paths = [str(p) for p in bad_configs.values()]
    args = _safety(data.draw(argv(paths)), data.draw(st.sampled_from(paths)), busy_port)
    result = subprocess.run(
        [sys.executable, "-m", "alertd", *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
        check=False,
        env={"PATH": "/usr/bin:/bin"},
    )
    assert result.returncode in (0, 1, 2), (args, result.stderr)
    assert_clean_stderr(result.stderr)
