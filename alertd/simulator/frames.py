"""Frames exactly as the two protocol documents show them, built from ``activity`` facts.

Piexgo (``protocols/piexgo-websocket-streams.md``): decimals are strings (prices with 10
decimals, volumes and values with 8, the average fill ``price`` with 2), order ``timestamp``
is the order's creation time in seconds, depth levels are JSON numbers. Choices the document
leaves open, written down here so that the decoder can rely on them:

- ``direct``: 0 when the taker bought, 1 when the taker sold.
- ``id`` of an order frame: the frame's time in nanoseconds plus a counter, unique per frame
  (the example's ``1559734776923657000`` looks like a nanosecond time).
- ``flag``, ``stop`` and ``market_price`` are always zero.
- ``id`` of a balance frame increases with every change of any balance; a snapshot repeats the
  id of the currency's last change, so an unchanged id means nothing moved.
- The acknowledgement and error frames are agreed extensions, not in the document:
  ``{"op":"subscribe","topic":"pinfo","status":"ok"}`` and
  ``{"op":"subscribe","topic":<topic or null>,"status":"error","msg":<why>}`` (``op`` is
  ``"unsubscribe"`` when answering an unsubscribe).

Cryptology (``protocols/cryptology-server-messages.rst``): keys in the document's order, amounts
as plain decimal strings, ``time`` as ``[seconds, microseconds]``. ``InsufficientFunds`` and
``OrderBookAgg`` carry no ``time``, as in the document. ``AnonymousTrade`` is sent although the
document comments it out.

Frames are compact JSON (no spaces): the wire form, byte-identical for the same facts.
"""

from __future__ import annotations

import functools
import json
from decimal import Decimal
from typing import Any

from alertd.simulator.activity import (
    BalanceFact,
    BookFact,
    Fact,
    InsufficientFundsFact,
    OrderFact,
    TradeFact,
)

PIEXGO_STATUS = {"placed": 0, "partial": 0, "filled": 2, "cancelled": 4}
OVERSIZE_CHARS = 1_200_000  # beyond trio-websocket's default max_message_size of 1 MiB


def dumps(obj: Any) -> str:
    return json.dumps(obj, separators=(",", ":"))


def _fixed(value: Decimal, places: int) -> str:
    return f"{value:.{places}f}"


def _plain(value: Decimal) -> str:
    """Cryptology's form: no exponent, no trailing zeros ("1", "0.25", "-3.5")."""
    text = f"{value.normalize():f}"
    return "0" if text in ("-0", "0") else text


def piexgo_symbol(symbol: str) -> str:
    """``BTC_USDT`` -> ``btc_usdt``, the form of Piexgo topics and market frames."""
    return symbol.lower()


# --- Piexgo -------------------------------------------------------------------------------


def piexgo_frames(fact: Fact, frame_no: int) -> list[tuple[str, str]]:
    """(topic, frame) pairs for one fact; ``frame_no`` makes order frame ids unique."""
    if isinstance(fact, OrderFact):
        data = {
            "order_price": _fixed(fact.price, 10),
            "price": _fixed(fact.avg_price, 2),
            "stop": _fixed(Decimal(0), 10),
            "market_price": _fixed(Decimal(0), 10),
            "volume": _fixed(fact.volume, 8),
            "remain": _fixed(fact.remaining, 8),
            "amount": _fixed(fact.filled_quote, 8),
            "type": fact.side,
            "timestamp": fact.created_us // 1_000_000,
            "order_id": str(fact.order_id),
            "market": fact.symbol,
            "status": PIEXGO_STATUS[fact.state],
            "flag": 0,
            "id": fact.at_us * 1000 + frame_no % 1000,
        }
        return [("pinfo", dumps({"topic": "pinfo", "type": "order", "data": data}))]
    if isinstance(fact, BalanceFact):
        return [("pinfo", piexgo_balance(fact))]
    if isinstance(fact, TradeFact):
        sym = piexgo_symbol(fact.symbol)
        deals = [
            {
                "time": d.at_us // 1000,
                "direct": 0 if d.taker_side == "buy" else 1,
                "price": _fixed(d.price, 10),
                "vol": _fixed(d.amount, 8),
            }
            for d in fact.deals
        ]
        frame = {"topic": "dealinfo", "symbol": sym, "deals": deals}
        return [(f"dealinfo.{sym}", dumps(frame))]
    if isinstance(fact, BookFact):
        sym = piexgo_symbol(fact.symbol)
        return [(f"depth.{sym}", dumps(_piexgo_depth(sym, fact.bids, fact.asks, fact.change_id)))]
    return []  # InsufficientFunds: Piexgo's document has no such message


def piexgo_balance(fact: BalanceFact) -> str:
    data = {
        "token": fact.currency,
        "type": "balance",
        "value": _fixed(fact.balance, 8),
        "id": fact.seq,
    }
    return dumps({"topic": "pinfo", "type": "balance", "data": data})


def _piexgo_depth(
    sym: str,
    bids: tuple[tuple[Decimal, Decimal], ...],
    asks: tuple[tuple[Decimal, Decimal], ...],
    change_id: int,
) -> dict[str, Any]:
    def book(levels: tuple[tuple[Decimal, Decimal], ...]) -> list[dict[str, Any]]:
        return [{"index": i, "price": float(p), "qty": float(q)} for i, (p, q) in enumerate(levels)]

    return {
        "topic": "depth",
        "symbol": sym,
        "buy_book": book(bids),
        "sell_book": book(asks),
        "change_id": change_id,
    }


def piexgo_ack(op: str, topic: str) -> str:
    return dumps({"op": op, "topic": topic, "status": "ok"})


def piexgo_error(op: str, topic: str | None, msg: str) -> str:
    return dumps({"op": op, "topic": topic, "status": "error", "msg": msg})


# --- Cryptology ---------------------------------------------------------------------------


def _time(at_us: int) -> list[int]:
    return [at_us // 1_000_000, at_us % 1_000_000]


def cryptology_frames(fact: Fact) -> list[str]:
    """Frames for one fact (Cryptology has no topics: everything goes to every partner)."""
    if isinstance(fact, OrderFact):
        prefix = "Buy" if fact.side == "buy" else "Sell"
        ids = {"order_id": fact.order_id}
        tail = {"time": _time(fact.at_us), "trade_pair": fact.symbol}
        client = {"client_order_id": fact.client_order_id}
        if fact.closed_inline or fact.state == "placed":
            frame = {
                "@type": f"{prefix}OrderPlaced",
                "amount": _plain(fact.volume),
                "closed_inline": fact.closed_inline,
                **ids,
                "price": _plain(fact.price),
                **tail,
                **client,
            }
        elif fact.state == "partial":
            frame = {
                "@type": f"{prefix}OrderAmountChanged",
                "amount": _plain(fact.remaining),
                **ids,
                **tail,
                **client,
            }
        else:
            kind = "Closed" if fact.state == "filled" else "Cancelled"
            frame = {"@type": f"{prefix}Order{kind}", **ids, **tail, **client}
        return [dumps(frame)]
    if isinstance(fact, BalanceFact):
        frame = {
            "@type": "SetBalance",
            "balance": _plain(fact.balance),
            "change": _plain(fact.change),
            "currency": fact.currency,
            "reason": fact.reason,
            "time": _time(fact.at_us),
        }
        return [dumps(frame)]
    if isinstance(fact, InsufficientFundsFact):
        frame = {
            "@type": "InsufficientFunds",
            "order_id": fact.order_id,
            "currency": fact.currency,
        }
        return [dumps(frame)]
    if isinstance(fact, TradeFact):
        return [
            dumps(
                {
                    "@type": "AnonymousTrade",
                    "amount": _plain(d.amount),
                    # the maker bought when the taker sold
                    "maker_buy": d.taker_side == "sell",
                    "price": _plain(d.price),
                    "time": _time(d.at_us),
                    "trade_pair": fact.symbol,
                }
            )
            for d in fact.deals
        ]
    return [dumps(_cryptology_book(fact.symbol, fact.bids, fact.asks))]


def _cryptology_book(
    pair: str,
    bids: tuple[tuple[Decimal, Decimal], ...],
    asks: tuple[tuple[Decimal, Decimal], ...],
) -> dict[str, Any]:
    return {
        "@type": "OrderBookAgg",
        "buy_levels": {_plain(p): _plain(q) for p, q in bids},
        "sell_levels": {_plain(p): _plain(q) for p, q in asks},
        "trade_pair": pair,
    }


# --- login (both exchanges; agreed, not in either document) -------------------------------


def login_ok() -> str:
    return dumps({"op": "login", "status": "ok"})


def login_error(msg: str) -> str:
    return dumps({"op": "login", "status": "error", "msg": msg})


# --- garbage: what a misbehaving server sends ---------------------------------------------

GARBAGE_KINDS = ("truncated", "unknown", "unknown-kind", "not-an-object", "oversize")


def _oversize_levels(count: int) -> list[tuple[Decimal, Decimal]]:
    return [(Decimal(40000) + Decimal(i) / 100, Decimal("0.5")) for i in range(count)]


def garbage_frame(exchange: str, kind: str, sample: str) -> str:
    """A bad frame of ``kind`` (one of ``GARBAGE_KINDS``); ``sample`` is a good frame of the
    same exchange, cut in half for the truncated kind."""
    if kind == "truncated":
        return sample[: max(1, len(sample) // 2)]
    if kind == "not-an-object":
        return dumps(["pinfo", 1, None] if exchange == "piexgo" else ["SetBalance", "1"])
    if exchange == "piexgo":
        if kind == "unknown":
            return dumps(
                {"topic": "kline", "symbol": "btc_usdt", "data": {"open": "1", "close": "2"}}
            )
        if kind == "unknown-kind":
            return dumps({"topic": "pinfo", "type": "position", "data": {"token": "BTC"}})
    else:
        if kind == "unknown":
            return dumps({"@type": "MarginCallIssued", "currency": "USD", "time": [0, 0]})
        if kind == "unknown-kind":
            return dumps({"order_id": 1, "amount": "1", "trade_pair": "BTC_USD"})  # no @type
    return _oversize(exchange)


@functools.cache  # building 1.2 MB of JSON takes tens of milliseconds; it never changes
def _oversize(exchange: str) -> str:
    """A well-formed book frame too big for a default trio-websocket client."""
    if exchange == "piexgo":
        levels = _oversize_levels(OVERSIZE_CHARS // 40)
        frame = _piexgo_depth("btc_usdt", tuple(levels), tuple(levels), 1)
    else:
        levels = _oversize_levels(OVERSIZE_CHARS // 20)
        frame = _cryptology_book("BTC_USD", tuple(levels), tuple(levels))
    text = dumps(frame)
    assert len(text) > OVERSIZE_CHARS, "oversize frame came out too small"
    return text
