"""`alertd check` on mutated configs (config.example.toml and every TOML example of the
README): whatever the mutation, exit 0 or 1, every line on stderr a problem naming the file
(or the count), never a traceback; bounded runs, in-process and as a real process."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from alertd.cli import main

from .conftest import EXAMPLE, REPO, assert_clean_stderr, readme_toml_blocks

# Values a person (or a bad paste) might put after "=": wrong types, odd numbers, shell
# references, references gone wrong, unbalanced brackets, deep nesting, long strings.
VALUES = [
    '""', '"', "0", "-1", "1e999", "nan", "inf", "-inf", "[]", "{}", "true", "[[[[", "{ a = ",
    '"5 mins"', '"${PIEXGO_API_KEY}"', '"{env:}"', '"{env:NOPE}"', '"{cred:../x}"',
    '"tgram://123456:ABCDEFGHIJKLMNOPQRSTUVWXYZ123456789/1"', '"BTCUSDT"', '"__class__"',
    "'{{ price.__class__ }}'", "'{% include \"x\" %}'", '"\\u0000"', '"' + "x" * 5000 + '"',
    "{ a = " * 60 + "1" + " }" * 60, "[" * 40 + "]" * 40, "99999999999999999999999999",
    '"99999999999d"', "1979-05-27T07:32:00Z", '"order.*"', '["a", 1]',
]  # fmt: skip


@st.composite
def mutated(draw: st.DrawFn, text: str) -> str:
    """``text`` after one to three mutations: a line deleted, duplicated, swapped, given
    another value, cut short, or random text inserted."""
    lines = text.splitlines(keepends=True) or [""]
    for _ in range(draw(st.integers(1, 3))):
        i = draw(st.integers(0, len(lines) - 1))
        kind = draw(st.sampled_from(["delete", "duplicate", "swap", "value", "insert", "cut"]))
        if kind == "delete" and len(lines) > 1:
            del lines[i]
        elif kind == "duplicate":
            lines.insert(i, lines[i])
        elif kind == "swap":
            j = draw(st.integers(0, len(lines) - 1))
            lines[i], lines[j] = lines[j], lines[i]
        elif kind == "value" and "=" in lines[i]:
            key = lines[i].split("=", 1)[0]
            lines[i] = f"{key}= {draw(st.sampled_from(VALUES))}\n"
        elif kind == "insert":
            lines.insert(i, draw(st.text(max_size=40)) + "\n")
        elif kind == "cut":
            lines[i] = lines[i][: draw(st.integers(0, len(lines[i])))]
    return "".join(lines)


def _check(path: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(["check", "-c", str(path)])
    out, err = capsys.readouterr()
    return code, out, err


def _assert_answer(code: int, out: str, err: str, path: Path) -> None:
    """Exit 0 with one OK line, or exit 1 with every stderr line about the file."""
    assert code in (0, 1)
    assert_clean_stderr(err)
    if code == 0:
        assert out.startswith(f"{path}: OK") and err == ""
    else:
        assert err and all(line.startswith(str(path)) for line in err.splitlines()), err


FUZZ = settings(
    max_examples=80,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


def test_the_unmutated_examples_pass_or_fail_cleanly(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], example_environment: Path
) -> None:
    """The example itself passes; each README example, checked alone, gets a clean answer."""
    assert _check(EXAMPLE, capsys)[0] == 0
    blocks = readme_toml_blocks()
    assert len(blocks) >= 5
    for i, block in enumerate(blocks):
        path = tmp_path / f"readme-{i}.toml"
        path.write_text(block)
        _assert_answer(*_check(path, capsys), path)


@FUZZ
@given(text=mutated(EXAMPLE.read_text()))
def test_mutated_example_never_gives_a_traceback(
    text: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    example_environment: Path,
) -> None:
    """A mutated config.example.toml is OK or a list of problems with the file's name."""
    path = tmp_path / "config.toml"
    path.write_text(text, encoding="utf-8", errors="surrogatepass")
    _assert_answer(*_check(path, capsys), path)


@settings(FUZZ, max_examples=60)
@given(data=st.data())
def test_mutated_readme_examples_never_give_a_traceback(
    data: st.DataObject,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    example_environment: Path,
) -> None:
    """A mutated README example (rules, channels, accounts pasted into a file) is OK or a
    list of problems, never a traceback."""
    block = data.draw(st.sampled_from(readme_toml_blocks()))
    path = tmp_path / "config.toml"
    path.write_text(data.draw(mutated(block)), encoding="utf-8", errors="surrogatepass")
    _assert_answer(*_check(path, capsys), path)


@settings(FUZZ, max_examples=2)
@given(text=mutated(EXAMPLE.read_text()))
def test_mutated_example_through_a_real_process(
    text: str, tmp_path: Path, example_environment: Path
) -> None:
    """The same through `python -m alertd check` as a real process: same exit codes, no
    traceback, within a bound."""
    path = tmp_path / "config.toml"
    path.write_text(text, encoding="utf-8", errors="surrogatepass")
    result = subprocess.run(
        [sys.executable, "-m", "alertd", "check", "-c", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
        check=False,
    )
    _assert_answer(result.returncode, result.stdout, result.stderr, path)


@pytest.mark.parametrize("kind", ["deep", "deep-header", "binary", "fifo", "directory", "syntax"])
def test_bad_files_through_a_real_process(kind: str, bad_configs: dict[str, Path]) -> None:
    """The files that used to end in a traceback or a hang (a table 450 levels deep, a FIFO)
    get one line and exit 1 from a real `alertd check`."""
    result = subprocess.run(
        [sys.executable, "-m", "alertd", "check", "-c", str(bad_configs[kind])],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
        check=False,
    )
    assert result.returncode == 1
    assert_clean_stderr(result.stderr)
    assert len(result.stderr.splitlines()) == 2  # the problem, then the count
