"""Symbols that can never match an event (no separator between base and quote) fail the check,
in rule filters and in market stream names, with the spelling to write."""

from __future__ import annotations

import pytest

from alertd.config.symbols import suggestion, symbol_problem

from .conftest import ProblemsOf, lines

CONFIG = """\
[[accounts]]
name = "main"
exchange = "piexgo"
url = "wss://api.piexgo.com/ws"
streams = ["pinfo", "dealinfo.{piexgo}"]

[[accounts]]
name = "desk"
exchange = "cryptology"
url = "wss://api.cryptology.com/v1/connect"
streams = ["account", "book.{cryptology}"]

[channels]
me = "json://localhost:8080/"

[[rules]]
name = "fills"
on = "order.filled"
symbol = {rule}
notify = ["me"]
"""


def _config(piexgo: str = "btc_usdt", cryptology: str = "BTC_USD", rule: str = '"BTC_USDT"') -> str:
    return (
        CONFIG.replace("{piexgo}", piexgo)
        .replace("{cryptology}", cryptology)
        .replace("{rule}", rule)
    )


def test_symbols_with_any_separator_pass(problems_of: ProblemsOf) -> None:
    """btc_usdt, BTC-USD, eth/btc and lists of them are all BASE_QUOTE once normalized."""
    text = _config("eth-usdt", "ETH/BTC", '["btc_usdt", "ETH-USDT", "sol/usdc"]')
    assert problems_of(text) == []


def test_rule_symbol_without_separator_is_refused_with_the_spelling(
    problems_of: ProblemsOf,
) -> None:
    """symbol = "BTCUSDT" passed before and never matched; now it says to write BTC_USDT."""
    assert lines(problems_of(_config(rule='"BTCUSDT"'))) == [
        'config.toml:19 rules[0].symbol: "BTCUSDT" is not a symbol of the form BASE_QUOTE: '
        'write "BTC_USDT" (both exchanges name a pair with a separator; -, / and _ all work); '
        "the rule would never match"
    ]


def test_each_bad_symbol_of_a_list_is_named(problems_of: ProblemsOf) -> None:
    """In a list, each symbol that cannot match is its own problem, by index."""
    problems = problems_of(_config(rule='["BTC_USDT", "ETHBTC", "DOGE"]'))
    assert [p.path for p in problems] == ["rules[0].symbol[1]", "rules[0].symbol[2]"]
    assert 'write "ETH_BTC"' in problems[0].message
    assert 'e.g. "BTC_USDT"' in problems[1].message


def test_market_stream_without_separator_is_refused(problems_of: ProblemsOf) -> None:
    """A Piexgo or Cryptology market stream named after a symbol without separator would never
    send a frame: each is refused on its line with the stream name to write."""
    problems = problems_of(_config("btcusdt", "BTCUSD"))
    assert [(p.line, p.path) for p in problems] == [
        (5, "accounts[0].streams[1]"),
        (11, "accounts[1].streams[1]"),
    ]
    assert 'write "dealinfo.btc_usdt"' in problems[0].message
    assert 'write "book.BTC_USD"' in problems[1].message


@pytest.mark.parametrize(
    ("written", "expected"),
    [("BTCUSDT", "BTC_USDT"), ("ethbtc", "ETH_BTC"), ("btc usdt", "BTC_USDT"), ("XYZ", None)],
)
def test_suggestion(written: str, expected: str | None) -> None:
    """The hint splits off a known quote currency or joins two words; none when unsure."""
    assert suggestion(written) == expected


def test_symbol_problem_is_none_for_base_quote() -> None:
    """A BASE_QUOTE symbol in any case and separator has no problem."""
    assert symbol_problem("btc-usdt") is None
    assert symbol_problem("1000SHIB/USDT") is None
