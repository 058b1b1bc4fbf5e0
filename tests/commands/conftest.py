"""Files and helpers for the command-line tests: the example's environment, bad config files
of every kind, and what a one-line answer on stderr looks like."""

from __future__ import annotations

import os
import re
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from config.conftest import EXAMPLE_CREDENTIALS, EXAMPLE_ENV  # tests/config

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "config.example.toml"
README = REPO / "README.md"


def readme_toml_blocks() -> list[str]:
    """Every ```toml example of the README."""
    return re.findall(r"```toml\n(.*?)```", README.read_text(), re.S)


@pytest.fixture(scope="module")
def example_environment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The process environment config.example.toml needs (its variables and credentials), for
    commands that read os.environ themselves; yields the credentials directory."""
    directory = tmp_path_factory.mktemp("credentials")
    for name, value in EXAMPLE_CREDENTIALS.items():
        (directory / name).write_text(value)
    with pytest.MonkeyPatch.context() as patch:
        for name, value in EXAMPLE_ENV.items():
            patch.setenv(name, value)
        patch.setenv("CREDENTIALS_DIRECTORY", str(directory))
        patch.delenv("STATE_DIRECTORY", raising=False)
        yield directory


@pytest.fixture(scope="module")
def bad_configs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Config files that no command can use, each wrong in another way; none is valid, so a
    command given one stops before it starts anything."""
    root = tmp_path_factory.mktemp("bad-configs")
    state = root / "state"
    files = {
        "missing": root / "missing.toml",
        "directory": root,
        "binary": root / "binary.toml",
        "syntax": root / "syntax.toml",
        "deep": root / "deep.toml",
        "deep-header": root / "deep-header.toml",
        "problems": root / "problems.toml",
        "fifo": root / "fifo",
    }
    files["binary"].write_bytes(b"\xff\xfe\x00garbage\x00")
    files["syntax"].write_text("[daemon\nstate_dir = \n")
    files["deep"].write_text("a = " + "{b = " * 450 + "1" + "}" * 450 + "\n")
    files["deep-header"].write_text("[" + ".".join(["t"] * 450) + "]\nx = 1\n")
    # valid TOML, valid state_dir (silence writes there), but no config alertd can run
    files["problems"].write_text(
        f'[daemon]\nstate_dir = "{state}"\ntimezone = "Mars/Olympus"\n\n'
        '[[rules]]\nname = "filled"\non = "order.filed"\nnotify = ["nobody"]\n'
    )
    os.mkfifo(files["fifo"])
    return files


@pytest.fixture(scope="module")
def busy_port() -> Iterator[int]:
    """A port on 127.0.0.1 that something already listens on."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        yield s.getsockname()[1]


# a line that is an exception's repr ("ValueError: year 3170843 is out of range")
_EXCEPTION_LINE = re.compile(r"^\w*(Error|Exception|Group|Interrupt)\b")


def assert_clean_stderr(err: str, *, one_line: bool = False) -> None:
    """No traceback or exception line, no blank line, and (``one_line``) a single line."""
    assert "Traceback" not in err, err
    lines = err.splitlines()
    assert not any(_EXCEPTION_LINE.match(line) for line in lines), err
    assert all(line.strip() for line in lines), err
    if one_line:
        assert len(lines) == 1, err
