"""`alertd silence add` refuses a --match value that no configured account, rule, symbol or
currency has, with a "did you mean" and nothing written; --force adds it anyway."""

from __future__ import annotations

from pathlib import Path

import pytest

from alertd.cli import main

from .conftest import assert_clean_stderr

CONFIG = """\
[daemon]
state_dir = "{state}"

[[accounts]]
name = "cryptology-desk"
exchange = "cryptology"
url = "ws://127.0.0.1:1/ws"

[[accounts]]
name = "piexgo-main"
exchange = "piexgo"
url = "ws://127.0.0.1:1/ws"
streams = ["pinfo", "dealinfo.eth_usdt"]

[[rules]]
name = "filled"
on = "order.filled"
symbol = ["btc-usdt"]

[[rules]]
name = "low-balance"
on = "balance.changed"
currency = "usdt"
"""


@pytest.fixture
def config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.delenv("STATE_DIRECTORY", raising=False)
    path = tmp_path / "alertd.toml"
    path.write_text(CONFIG.format(state=tmp_path / "state"))
    return path


def _add(config: Path, capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(["silence", "add", "-c", str(config), "--for", "1h", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def _listed(config: Path, capsys: pytest.CaptureFixture[str]) -> str:
    assert main(["silence", "list", "-c", str(config)]) == 0
    return capsys.readouterr().out


@pytest.mark.parametrize(
    ("match", "hint"),
    [
        ("account=cryptology", "did you mean 'cryptology-desk'?"),
        ("symbol=btc_usdt", "did you mean 'BTC_USDT'?"),
        ("currency=usdt", "did you mean 'USDT'?"),
        ("rule=filed", "did you mean 'filled'?"),
    ],
)
def test_a_value_nothing_has_is_refused_with_a_suggestion(
    config: Path, capsys: pytest.CaptureFixture[str], match: str, hint: str
) -> None:
    """A value no configured account, symbol, currency or rule has exits 2, names the value
    and the close one, and adds no silence."""
    code, out, err = _add(config, capsys, "--rule", "*", "--match", match)
    assert code == 2
    assert out == ""
    assert_clean_stderr(err)
    first, last = err.splitlines()
    assert first.startswith(f"alertd silence add: --match {match}: ")
    assert first.endswith(hint)
    assert last == "alertd silence add: nothing added (--force adds it anyway)"
    assert not (config.parent / "state").exists()


@pytest.mark.parametrize(
    "match",
    ["account=cryptology-desk", "account=cryptology-*", "symbol=ETH_USDT", "currency=USDT"],
)
def test_a_value_the_config_has_is_added(
    config: Path, capsys: pytest.CaptureFixture[str], match: str
) -> None:
    """A configured account (or a glob matching one), a market stream's symbol and a rule's
    currency, in the form alerts carry, are taken."""
    code, _, err = _add(config, capsys, "--rule", "*", "--match", match)
    assert (code, err) == (0, "")
    assert match in _listed(config, capsys)


def test_force_adds_a_value_nothing_has(config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """--force adds the silence the check refused."""
    code, _, err = _add(config, capsys, "--rule", "*", "--match", "account=cryptology", "--force")
    assert (code, err) == (0, "")
    assert "account=cryptology " in _listed(config, capsys)


def test_a_symbol_is_not_judged_when_the_config_names_none(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """With no symbol in any rule or stream, an order on any symbol can alert: every symbol
    value is taken."""
    monkeypatch.delenv("STATE_DIRECTORY", raising=False)
    config = tmp_path / "alertd.toml"
    config.write_text(
        f'[daemon]\nstate_dir = "{tmp_path / "state"}"\n\n'
        '[[rules]]\nname = "filled"\non = "order.filled"\n'
    )
    code, _, err = _add(config, capsys, "--rule", "filled", "--match", "symbol=SOL_USDC")
    assert (code, err) == (0, "")


def test_the_answer_is_in_the_configured_timezone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`silence add` and `silence list` show the end in [daemon] timezone, the zone named."""
    monkeypatch.delenv("STATE_DIRECTORY", raising=False)
    monkeypatch.setenv("TZ", "UTC")  # the machine's own zone is not the one shown
    config = tmp_path / "alertd.toml"
    config.write_text(
        f'[daemon]\nstate_dir = "{tmp_path / "state"}"\ntimezone = "Asia/Tokyo"\n\n'
        '[[rules]]\nname = "filled"\non = "order.filled"\n'
    )
    code, out, _ = _add(config, capsys, "--rule", "filled")
    assert code == 0
    assert out.startswith("added silence ") and " JST (active)" in out
    assert " JST (active)" in _listed(config, capsys)
