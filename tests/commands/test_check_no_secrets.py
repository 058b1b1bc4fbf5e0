"""`alertd check --no-secrets`: everything is checked but whether the secret references
resolve, so a config kept in git can be checked in CI or on a laptop."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from alertd.cli import main
from alertd.notify import console

from .conftest import EXAMPLE, REPO, assert_clean_stderr

# apprise loads its plugins once, and the first load warns of imghdr (DeprecationWarning, an
# error under pytest): console.py loads them with that warning silenced, as the daemon does.
_ = console

SECRET_VARIABLES = ("PIEXGO_API_KEY", "CRYPTOLOGY_API_KEY", "TELEGRAM_BOT_TOKEN", "SLACK_TOKENS")


def _check(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    """`alertd check ARGS` in a fresh process whose environment holds no secret at all."""
    env = {k: v for k, v in os.environ.items() if k not in SECRET_VARIABLES}
    for name in ("CREDENTIALS_DIRECTORY", "ALERTD_CONFIG"):
        env.pop(name, None)
    return subprocess.run(
        [sys.executable, "-m", "alertd", "check", *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=cwd,
        env=env,
        check=False,
    )


def test_the_shipped_example_passes_on_a_fresh_clone() -> None:
    """`alertd check --no-secrets config.example.toml` passes with no secret set and says the
    references were not resolved, where plain `check` fails on every one."""
    result = _check("--no-secrets", "config.example.toml")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("config.example.toml: OK (")
    assert "secret references not resolved (--no-secrets)" in result.stdout
    plain = _check("config.example.toml")
    assert plain.returncode == 1
    assert "PIEXGO_API_KEY is not set" in plain.stderr


@pytest.fixture
def no_secrets_set(monkeypatch: pytest.MonkeyPatch) -> None:
    """This process's environment without the example's variables and credentials."""
    for name in (*SECRET_VARIABLES, "CREDENTIALS_DIRECTORY", "ALERTD_CONFIG"):
        monkeypatch.delenv(name, raising=False)


@pytest.mark.usefixtures("no_secrets_set")
def test_everything_else_is_still_checked(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A rule naming a channel that does not exist, a channel whose scheme apprise does not
    know and a bot token written literally are still refused, each with its line."""
    config = tmp_path / "alertd.toml"
    text = EXAMPLE.read_text()
    text = text.replace(
        'phone = "tgram://{env:TELEGRAM_BOT_TOKEN}/{env:TELEGRAM_CHAT_ID}"',
        'phone = "telegram://{env:TELEGRAM_BOT_TOKEN}/{env:TELEGRAM_CHAT_ID}"\n'
        'pager = "tgram://123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw/{env:TELEGRAM_CHAT_ID}"',
    )
    text += '\n[[rules]]\nname = "extra"\non = "order.filled"\nnotify = ["phnoe"]\n'
    config.write_text(text)
    assert main(["check", "--no-secrets", "-c", str(config)]) == 1
    err = capsys.readouterr().err
    assert_clean_stderr(err)
    lines = err.splitlines()
    assert any("channels.phone" in line and "scheme 'telegram'" in line for line in lines)
    assert any("channels.pager" in line and "written literally" in line for line in lines)
    assert any("notify" in line and "phnoe" in line for line in lines)
    assert "AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw" not in err
    assert lines[-1] == f"{config}: 3 problems"


@pytest.mark.usefixtures("no_secrets_set")
def test_a_reference_that_cannot_be_valid_is_still_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A reference no environment could satisfy (a variable name with a space) is a problem
    with --no-secrets too: only whether a valid reference is set goes unchecked."""
    config = tmp_path / "alertd.toml"
    config.write_text(EXAMPLE.read_text().replace("{env:PIEXGO_API_KEY}", "{env:PIEXGO API KEY}"))
    assert main(["check", "--no-secrets", str(config)]) == 1
    assert "is not a valid environment variable name" in capsys.readouterr().err
