"""config.example.toml passes `alertd check` and documents every key; `alertd check` prints
problems to stderr with exit 1, or a short OK summary with exit 0."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, get_args, get_origin

import attrs
import pytest

from alertd.check import load_config
from alertd.cli import main
from alertd.config.model import Config
from alertd.config.secrets import SecretEnvironment

from .conftest import EXAMPLE, EXAMPLE_ENV


def _keys(cl: Any, out: set[str]) -> set[str]:
    for field in attrs.fields(attrs.resolve_types(cl)):
        out.add(field.name.rstrip("_"))
        for t in (field.type, *get_args(field.type)):
            inner = get_args(t)[-1] if get_origin(t) in (list, dict) else t
            if attrs.has(inner) and inner.__name__ != "Secret":
                _keys(inner, out)
    return out


def test_example_config_passes(secrets: SecretEnvironment) -> None:
    """The shipped example loads without a problem when its references resolve."""
    config = load_config(EXAMPLE, secrets=secrets)
    assert {a.exchange for a in config.accounts} == {"piexgo", "cryptology"}
    assert {r.type for r in config.rules} == {
        "event",
        "threshold",
        "rate",
        "absence",
        "order_timeout",
    }


def test_example_config_documents_every_key() -> None:
    """Every key of the schema is written in the example, so the example stays the manual."""
    text = EXAMPLE.read_text()
    written = set(re.findall(r"^\s*#?\s*\[*([A-Za-z_.]+)\]*\s*=?", text, re.M))
    written |= set(re.findall(r"[{,]\s*([A-Za-z_]+)\s*=", text))
    written |= {part for w in list(written) for part in w.split(".")}
    missing = sorted(_keys(Config, set()) - written)
    assert missing == []


def test_check_command_ok_summary(
    credentials: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`alertd check` on the example exits 0 and summarises what it found."""
    for name, value in EXAMPLE_ENV.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(credentials))
    assert main(["check", "-c", str(EXAMPLE)]) == 0
    out, err = capsys.readouterr()
    assert out == f"{EXAMPLE}: OK (2 accounts, 2 channels, 9 rules)\n"
    assert err == ""


def test_check_command_prints_every_problem(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`alertd check` on a bad file prints each problem to stderr and exits 1."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("PIEXGO_API_KEY", raising=False)
    Path("bad.toml").write_text(
        '[daemon]\ntimezone = "Nowhere"\n\n[[accounts]]\nname = "a"\nexchange = "piexgo"\n'
        'url = "wss://x/"\n[accounts.auth]\napi_key = "{env:PIEXGO_API_KEY}"\n'
    )
    assert main(["check", "-c", "bad.toml"]) == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert err.splitlines() == [
        'bad.toml:2 daemon.timezone: "Nowhere" is not a time zone',
        "bad.toml:9 accounts[0].auth.api_key: environment variable PIEXGO_API_KEY is not set "
        "(referenced as {env:PIEXGO_API_KEY})",
        "bad.toml: 2 problems",
    ]


def test_check_command_missing_file(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    """`alertd check` on a path that does not exist says so and exits 1."""
    assert main(["check", "-c", str(tmp_path / "none.toml")]) == 1
    assert "none.toml: no such file" in capsys.readouterr().err
