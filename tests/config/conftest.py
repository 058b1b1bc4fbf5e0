"""Helpers for config tests: write a TOML file, load it with a controlled environment."""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from alertd.check import check_config
from alertd.config.errors import Problem
from alertd.config.secrets import SecretEnvironment

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "config.example.toml"

# Values for every reference in config.example.toml; distinctive so a leak is easy to spot.
EXAMPLE_ENV = {
    "PIEXGO_API_KEY": "pk-LEAKCHECK-1111",
    "CRYPTOLOGY_API_KEY": "ck-LEAKCHECK-2222",
    "CRYPTOLOGY_API_SECRET": "cs-LEAKCHECK-3333",
    "TELEGRAM_BOT_TOKEN": "123456:LEAKCHECK-4444",
    "TELEGRAM_CHAT_ID": "98765",
    "SLACK_TOKENS": "T0/B0/LEAKCHECK5555",
}
# As the shipped unit names them: the file smtp_password becomes alertd_smtp_password.
EXAMPLE_CREDENTIALS = {
    "alertd_piexgo_api_secret": "ps-LEAKCHECK-6666\n",
    "alertd_smtp_password": "pw-LEAKCHECK-7777\n",
}

# An account that logs in with both secrets by reference, and a channel.
ACCOUNT_WITH_AUTH = """\
[[accounts]]
name = "main"
exchange = "piexgo"
url = "wss://api.piexgo.com/ws"
[accounts.auth]
api_key = "{env:PIEXGO_API_KEY}"
api_secret = "{cred:alertd_piexgo_api_secret}"

[channels]
me = "tgram://{env:TELEGRAM_BOT_TOKEN}/{env:TELEGRAM_CHAT_ID}"
"""

MINIMAL = """\
[[accounts]]
name = "main"
exchange = "piexgo"
url = "wss://api.piexgo.com/ws"
streams = ["pinfo"]

[channels]
me = "json://localhost:8080/"

[[rules]]
name = "filled"
on = "order.filled"
notify = ["me"]
"""


@pytest.fixture
def credentials(tmp_path: Path) -> Path:
    directory = tmp_path / "credentials"
    directory.mkdir()
    for name, value in EXAMPLE_CREDENTIALS.items():
        (directory / name).write_text(value)
    return directory


@pytest.fixture
def secrets(credentials: Path) -> SecretEnvironment:
    return SecretEnvironment(environ=dict(EXAMPLE_ENV), credentials_dir=str(credentials))


ProblemsOf = Callable[[str], list[Problem]]


@pytest.fixture
def problems_of(
    tmp_path: Path, secrets: SecretEnvironment, monkeypatch: pytest.MonkeyPatch
) -> ProblemsOf:
    """Problems of a config text, written to ./config.toml in a temporary directory."""
    monkeypatch.chdir(tmp_path)

    def run(text: str) -> list[Problem]:
        Path("config.toml").write_text(text)
        return check_config("config.toml", secrets=secrets)

    return run


def lines(problems: list[Problem]) -> list[str]:
    """Problems as a person reads them."""
    return [str(p) for p in problems]


_watching: dict[int, list[str]] = {}  # thread id -> socket events seen while watching
_hooked: list[bool] = []


def _audit(event: str, args: Any) -> None:
    calls = _watching.get(threading.get_ident())
    if calls is not None and event.startswith("socket."):
        calls.append(event)


@contextmanager
def socket_events() -> Iterator[list[str]]:
    """Socket audit events raised by this thread inside the block."""
    if not _hooked:
        sys.addaudithook(_audit)  # hooks cannot be removed; it records only when watching
        _hooked.append(True)
    calls: list[str] = []
    _watching[threading.get_ident()] = calls
    try:
        yield calls
    finally:
        del _watching[threading.get_ident()]
