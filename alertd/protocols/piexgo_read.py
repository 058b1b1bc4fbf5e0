"""Reading the fields of Piexgo order, balance and deals frames (``piexgo`` says what they mean).

Two readers per kind give the same values. ``read_*`` reads any frame through ``Reader`` and
is the one place a frame is rejected, with the reason. ``fast_*`` reads only the common, valid
shape (numbers as plain decimal strings, symbols ``Reader`` has already accepted, integers in
range) with plain lookups and the same conversions, and returns None for anything else, which
the decoder then hands to ``read_*``. Every check of a fast reader accepts a subset of what
``read_*`` accepts (tests/protocols/test_piexgo_fast_path.py pins that both agree).
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from alertd import events
from alertd.protocols._json import (
    MAX_MILLIS,
    MAX_SECONDS,
    Obj,
    Reader,
    cached_symbol,
    millis_time,
    plain_decimal,
    seconds_time,
)

SIDES: dict[str, events.Side] = {"buy": "buy", "sell": "sell"}
DIRECT: dict[int, events.Side] = {0: "buy", 1: "sell"}
STATUS_OPEN, STATUS_FILLED, STATUS_CANCELLED = 0, 2, 4
STATUSES = (STATUS_OPEN, STATUS_FILLED, STATUS_CANCELLED)

# What an order frame says: order_id, status, side, symbol, order_price, price, volume,
# remain, amount (see the module docstring for their meanings), timestamp.
OrderValues = tuple[
    str, int, events.Side, str, Decimal, Decimal, Decimal, Decimal, Decimal, datetime
]
# A deals frame's symbol and its deals: time, side, price, volume.
DealValues = tuple[str, list[tuple[datetime, events.Side, Decimal, Decimal]]]


def read_order(r: Reader, data: Obj) -> OrderValues:
    w = "data."
    order_id = r.ident(data, "order_id", w)
    status = r.integer(data, "status", w)
    if status not in STATUSES:
        raise r.fail(f"data.status {status} is not 0 (open), 2 (finished) or 4 (cancelled)")
    side = SIDES.get(r.text(data, "type", w))
    if side is None:
        raise r.fail(f"data.type must be 'buy' or 'sell', not {data['type']!r}")
    symbol = r.symbol(data, "market", w)
    limit = r.number(data, "order_price", w)
    average = r.number(data, "price", w)
    volume = r.number(data, "volume", w)
    remain = r.number(data, "remain", w)
    notional = r.number(data, "amount", w)
    created = r.unix_seconds(data, "timestamp", w)
    if remain > volume:
        raise r.fail(f"data.remain {remain} exceeds data.volume {volume}")
    return order_id, status, side, symbol, limit, average, volume, remain, notional, created


def read_balance(r: Reader, data: Obj) -> tuple[str, Decimal]:
    return r.text(data, "token", "data.").strip().upper(), r.number(data, "value", "data.")


def read_deals(r: Reader, obj: Obj) -> DealValues:
    symbol = r.symbol(obj, "symbol")
    trades = []
    for i, deal in enumerate(r.array(obj, "deals")):
        w = f"deals[{i}]."
        if not isinstance(deal, dict):
            raise r.fail(f"deals[{i}] must be an object")
        side = DIRECT.get(r.integer(deal, "direct", w))
        if side is None:
            raise r.fail(f"{w}direct must be 0 (buy) or 1 (sell), not {deal['direct']!r}")
        time = r.unix_millis(deal, "time", w)
        trades.append((time, side, r.number(deal, "price", w), r.number(deal, "vol", w)))
    return symbol, trades


def fast_order(data: Obj) -> OrderValues | None:
    order_id = data.get("order_id")
    if type(order_id) is int:
        order_id = str(order_id)
    elif type(order_id) is not str or not order_id:
        return None
    status, kind, market = data.get("status"), data.get("type"), data.get("market")
    if type(status) is not int or status not in STATUSES or type(kind) is not str:
        return None
    side = SIDES.get(kind)
    symbol = cached_symbol(market) if type(market) is str else None
    limit = plain_decimal(data.get("order_price"))
    average = plain_decimal(data.get("price"))
    volume = plain_decimal(data.get("volume"))
    remain = plain_decimal(data.get("remain"))
    notional = plain_decimal(data.get("amount"))
    created = data.get("timestamp")
    if (
        side is None
        or symbol is None
        or limit is None
        or average is None
        or volume is None
        or remain is None
        or notional is None
        or type(created) is not int
        or not 0 <= created <= MAX_SECONDS
        or remain > volume
    ):
        return None
    time = seconds_time(created)
    return order_id, status, side, symbol, limit, average, volume, remain, notional, time


def fast_balance(data: Obj) -> tuple[str, Decimal] | None:
    token, value = data.get("token"), plain_decimal(data.get("value"))
    if type(token) is not str or not token or value is None:
        return None
    return token.strip().upper(), value


def fast_deals(obj: Obj) -> DealValues | None:
    raw, deals = obj.get("symbol"), obj.get("deals")
    symbol = cached_symbol(raw) if type(raw) is str else None
    if symbol is None or type(deals) is not list:
        return None
    trades = []
    for deal in deals:
        if type(deal) is not dict:
            return None
        direct, millis = deal.get("direct"), deal.get("time")
        price, vol = plain_decimal(deal.get("price")), plain_decimal(deal.get("vol"))
        side = DIRECT.get(direct) if type(direct) is int else None
        if (
            side is None
            or type(millis) is not int
            or not 0 <= millis <= MAX_MILLIS
            or price is None
            or vol is None
        ):
            return None
        trades.append((millis_time(millis), side, price, vol))
    return symbol, trades
