"""Market symbols as the file writes them, checked against the one form events carry.

Both exchanges name a pair with a separator (Piexgo ``btc_usdt``, Cryptology ``BTC_USD``), and
alertd normalizes every spelling of it to ``BASE_QUOTE`` (``events.normalize_symbol``:
``btc-usdt``, ``BTC/USDT`` and ``btc_usdt`` are all ``BTC_USDT``). A symbol without a
separator (``BTCUSDT``) normalizes to itself, which no event ever carries: a rule filtering
on it never fires, and a stream named after it never sends a frame. So it is refused with
the spelling to write.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from alertd.config.errors import TomlPath
from alertd.config.model import AccountSettings, RuleSettings
from alertd.events import normalize_symbol

Found = list[tuple[TomlPath, str]]

BASE_QUOTE = re.compile(r"[A-Z0-9]+_[A-Z0-9]+")
# Quote currencies a pair written without a separator most likely ends in, longest first, so
# that the hint can say "BTC_USDT" for "BTCUSDT" (only a hint: the message says "e.g." when
# none fits).
_QUOTES = ("USDT", "USDC", "BUSD", "TUSD", "USD", "EUR", "GBP", "JPY", "BTC", "ETH", "BNB")


def suggestion(symbol: str) -> str | None:
    """``BASE_QUOTE`` for a symbol written another way, when one can be guessed."""
    words = [w for w in re.split(r"[^A-Za-z0-9]+", symbol.strip().upper()) if w]
    if len(words) == 2:
        return "_".join(words)
    if len(words) == 1:
        word = words[0]
        for quote in _QUOTES:
            if word.endswith(quote) and len(word) > len(quote):
                return f"{word[: -len(quote)]}_{quote}"
    return None


def symbol_problem(symbol: str, *, lower: bool = False) -> str | None:
    """Why ``symbol`` can never match an event (with what to write), or None when it can.
    ``lower``: suggest the lower-case form (Piexgo stream names)."""
    if BASE_QUOTE.fullmatch(normalize_symbol(symbol)):
        return None
    better = suggestion(symbol)
    if better is not None and lower:
        better = better.lower()
    hint = f'write "{better}"' if better else 'write it as BASE_QUOTE, e.g. "BTC_USDT"'
    return (
        f'"{symbol}" is not a symbol of the form BASE_QUOTE: {hint} (both exchanges name a '
        "pair with a separator; -, / and _ all work)"
    )


def _market_symbol(exchange: str, stream: str) -> str | None:
    """The symbol part of a market stream name ("depth.btc_usdt"), None for other streams."""
    if exchange == "piexgo":
        from alertd.protocols.piexgo import is_market_stream
    else:
        from alertd.protocols.cryptology import is_market_stream
    _, dot, symbol = stream.strip().partition(".")
    return symbol if dot and symbol and is_market_stream(stream) else None


def check_symbols(
    accounts: Sequence[tuple[int, AccountSettings]],
    rules: Sequence[tuple[int, RuleSettings]],
    out: Found,
) -> None:
    """Every market stream's symbol and every rule's ``symbol`` filter is ``BASE_QUOTE``."""
    for i, account in accounts:
        for j, stream in enumerate(account.streams):
            symbol = _market_symbol(account.exchange, stream)
            if symbol is None:
                continue
            problem = symbol_problem(symbol, lower=account.exchange == "piexgo")
            if problem is not None:
                prefix = stream.strip().partition(".")[0]
                better = suggestion(symbol)
                if better is not None:
                    better = better.lower() if account.exchange == "piexgo" else better
                    problem = problem.replace(f'write "{better}"', f'write "{prefix}.{better}"')
                out.append(
                    (
                        ("accounts", i, "streams", j),
                        f"in {stream!r}: {problem}; this stream would never send a frame",
                    )
                )
    for i, rule in rules:
        if rule.symbol is None:
            continue
        listed = isinstance(rule.symbol, list)
        symbols = rule.symbol if isinstance(rule.symbol, list) else [rule.symbol]
        for j, symbol in enumerate(symbols):
            problem = symbol_problem(symbol)
            if problem is not None:
                path: TomlPath = ("rules", i, "symbol", j) if listed else ("rules", i, "symbol")
                out.append((path, f"{problem}; the rule would never match"))
