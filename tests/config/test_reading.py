"""Whatever the file is (missing, a directory, a pipe, huge, not UTF-8, nested hundreds of
levels deep), reading a config answers with one problem naming the file, never a traceback
or a hang."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from alertd.check import parse_config, read_config
from alertd.config.reading import MAX_BYTES, MAX_DEPTH, read_toml
from alertd.config.secrets import SecretEnvironment

from .conftest import MINIMAL

NONE = SecretEnvironment(environ={})


def _one(path: Path | str) -> str:
    config, problems = read_config(path, NONE)
    assert config is None
    assert len(problems) == 1
    return str(problems[0])


def test_table_nested_450_levels_deep_is_one_problem(tmp_path: Path) -> None:
    """A table 450 levels deep (tomli raises RecursionError on the inline form) is one
    problem, as is the same depth in a table header, which tomli reads."""
    inline = tmp_path / "inline.toml"
    inline.write_text("a = " + "{b = " * 450 + "1" + "}" * 450 + "\n")
    assert _one(inline) == (
        f"{inline}: arrays or inline tables are nested too deeply (more than {MAX_DEPTH} "
        "levels; alertd's settings go four levels down at most)"
    )
    header = tmp_path / "header.toml"
    header.write_text(MINIMAL + "[" + ".".join(["t"] * 450) + "]\nx = 1\n")
    text = _one(header)
    assert text.startswith(f"{header}:{len(MINIMAL.splitlines()) + 1} t.t.t.t.t")
    assert "nested too deeply" in text


def test_deep_arrays_are_one_problem(tmp_path: Path) -> None:
    """An array nested 1,000 levels deep is one problem too."""
    path = tmp_path / "deep.toml"
    path.write_text("a = " + "[" * 1000 + "]" * 1000 + "\n")
    assert "nested too deeply" in _one(path)


def test_directory_pipe_and_missing_file(tmp_path: Path) -> None:
    """A directory, a FIFO (which would block a plain read forever) and a missing file each
    get their own one-line answer."""
    assert _one(tmp_path) == f"{tmp_path}: is a directory, not a config file"
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    assert _one(fifo) == f"{fifo}: is not a regular file (a device, socket or pipe)"
    assert _one(tmp_path / "nope.toml") == f"{tmp_path / 'nope.toml'}: no such file"
    assert _one("/dev/null") == "/dev/null: is not a regular file (a device, socket or pipe)"


def test_huge_file_is_refused_without_reading_it(tmp_path: Path) -> None:
    """A file larger than any config (a capture given by mistake) is refused by its size."""
    path = tmp_path / "big.toml"
    with open(path, "wb") as f:
        f.truncate(MAX_BYTES + 1)
    assert _one(path) == (
        f"{path}: is {MAX_BYTES + 1:,} bytes, too large for a config (at most {MAX_BYTES:,})"
    )


def test_not_utf8_names_the_line(tmp_path: Path) -> None:
    """A byte that is not UTF-8 is named with its line."""
    path = tmp_path / "latin1.toml"
    path.write_bytes(b'[daemon]\ntimezone = "Z\xfcrich"\n')
    assert _one(path) == f"{path}:2: is not UTF-8 text (byte 0xfc); save it as UTF-8"


def test_path_with_a_nul_byte() -> None:
    """A path with a NUL byte (which os functions refuse with ValueError) is one problem."""
    assert _one("bad\0path") == "bad\\x00path: cannot read: not a valid path"


def test_unreadable_file(tmp_path: Path) -> None:
    """A file without read permission is one problem naming why."""
    path = tmp_path / "secret.toml"
    path.write_text(MINIMAL)
    path.chmod(0)
    try:
        if os.access(path, os.R_OK):  # running as root: permissions do not apply
            pytest.skip("root reads every file")
        assert _one(path) == f"{path}: cannot read: Permission denied"
    finally:
        path.chmod(0o600)


def test_parse_config_never_raises_on_binary_garbage() -> None:
    """Text that is not TOML at all is a syntax error with line and column, not an exception."""
    _, problems = parse_config("\x00\x01[[[", secrets=NONE)
    assert len(problems) == 1 and problems[0].line == 1


def test_read_toml_gives_data_or_the_problem(tmp_path: Path) -> None:
    """read_toml, for commands that need a key or two, returns the data or one problem."""
    good = tmp_path / "good.toml"
    good.write_text('[daemon]\nstate_dir = "/tmp/x"\n')
    assert read_toml(good) == {"daemon": {"state_dir": "/tmp/x"}}
    bad = tmp_path / "bad.toml"
    bad.write_text("[daemon\n")
    problem = read_toml(bad)
    assert not isinstance(problem, dict)
    assert problem.line == 1
