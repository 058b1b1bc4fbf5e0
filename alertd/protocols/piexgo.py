"""Piexgo websocket streams (``piexgo-websocket-streams.md``), sans-IO.

Streams are ``pinfo`` (the account's orders and balances), ``dealinfo.<symbol>`` (trades) and
``depth.<symbol>`` (the book), lowercase on the wire; any case is accepted from the config
(``depth.BTC-USDT`` is ``depth.btc_usdt``). Subscribing sends ``{"op":"subscribe","topic":..}``
per stream. Replies agreed with our simulator, beyond the document: ``{"op": "subscribe" |
"unsubscribe" | "login", "status": "ok"}`` decodes to no events and ``"status": "error"``
raises ``ProtocolError`` naming the topic and the server's ``msg``.

Where the document leaves a meaning open, these are the readings (README "Protocol choices"):

- ``timestamp`` of an order is Unix **seconds** (1559734776 is 2019-06-05, the document's era;
  as milliseconds it would be 1970). It is the event ``time``. A deal's ``time`` is Unix
  **milliseconds** (1553326491272 is 2019-03-23).
- ``direct`` of a deal is the **taker's** side: ``0`` = buy (the taker lifted an ask), ``1`` =
  sell. The document lists buy before sell everywhere (``buy_book`` then ``sell_book``, order
  types "buy"/"sell"), 0 as the first value follows that order, and a trade feed conventionally
  reports the aggressor. Any other value is a ``ProtocolError`` rather than a guessed side.
- Order fields: ``order_price`` is the limit price (``price`` of the events; ``0`` means a
  market order: no limit, so ``price`` and ``slippage`` are None); ``volume`` is the order
  quantity in the base currency (``amount``); ``remain`` is the quantity still open
  (``remaining``; ``filled = volume - remain``); ``amount`` is the executed value in the quote
  currency (``notional``); ``price`` is the average fill price (``fill_price``, None while it is
  0). The document's example is consistent only this way round: 1 BTC executed for 7828.0752
  USDT is an average of 7828.0752, shown rounded as ``price`` 7828.08, under a 7831.16 limit.
- ``stop`` is the trigger price of a stop order (0 = not a stop order), ``market_price`` the
  reference market price Piexgo records for market/stop orders (0 otherwise), ``flag`` an
  internal order flag (0 in the only example) and ``id`` the update's identifier (the example's
  1559734776923657000 is the update time in nanoseconds). alertd uses none of them: they stay
  in ``raw`` for templates, are not validated, and do not change which events are produced.
  In particular ``id`` is not used to order updates, because the document does not promise it
  increases; repeats and late updates are recognised from ``remain`` and ``status`` instead.
- A balance frame's ``id`` (10897125) is a ledger record id; likewise unused. A balance frame
  whose value equals the last one seen for that token produces no event (nothing changed).

Order lifecycle (status 0 open, 2 finished, 4 cancelled): status 0 first seen gives
``order.placed`` (and ``order.partially_filled`` right after when ``remain`` is already below
``volume``); status 0 with ``remain`` below the last seen gives ``order.partially_filled``;
status 2 gives ``order.filled``; status 4 gives ``order.cancelled`` (preceded by
``order.partially_filled`` when ``remain`` dropped since the last update). Once an order is
filled or cancelled, further updates for it produce nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any, ClassVar

import attrs
import msgspec

from alertd import events
from alertd.protocols._base import DecoderBase, StreamNames, sorted_levels
from alertd.protocols._json import Obj, Reader, load_object, sub
from alertd.protocols.orders import TrackedOrder, slippage

log = logging.getLogger(__name__)

EXCHANGE = "piexgo"
ACCOUNT_STREAM = "pinfo"
MARKET_TOPICS = ("dealinfo", "depth")

_SIDES: dict[str, events.Side] = {"buy": "buy", "sell": "sell"}
_DIRECT: dict[int, events.Side] = {0: "buy", 1: "sell"}
_STATUS_OPEN, _STATUS_FILLED, _STATUS_CANCELLED = 0, 2, 4
_STATUSES = (_STATUS_OPEN, _STATUS_FILLED, _STATUS_CANCELLED)


# The canonical form of a stream name is its wire form (the topic sent in a subscribe).
NAMES = StreamNames(
    EXCHANGE, ACCOUNT_STREAM, MARKET_TOPICS, "symbol", "depth.btc_usdt", upper=False
)
normalize_stream = NAMES.normalize
is_market_stream = NAMES.is_market


def _op_frames(op: str, streams: Iterable[str]) -> list[str]:
    topics = dict.fromkeys(normalize_stream(s) for s in streams)  # ordered, no repeats
    return [msgspec.json.encode({"op": op, "topic": t}).decode() for t in topics]


@attrs.define
class PiexgoDecoder(DecoderBase):
    """One Piexgo account's protocol state: the order tracker and the last balances."""

    names: ClassVar[StreamNames] = NAMES

    def subscribe_frames(self, streams: Sequence[str]) -> list[str]:
        return _op_frames("subscribe", streams)

    def unsubscribe_frames(self, streams: Sequence[str]) -> list[str]:
        return _op_frames("unsubscribe", streams)

    def stream_for(self, event: events.Event) -> str | None:
        """The stream ``event`` arrived on, in wire form; None for events not from frames."""
        if isinstance(event, events.OrderEvent | events.BalanceChanged):
            return ACCOUNT_STREAM
        if isinstance(event, events.Trade):
            return "dealinfo." + event.symbol.lower()
        if isinstance(event, events.Book):
            return "depth." + event.symbol.lower()
        return None

    def _decode(self, frame: str | bytes, received: datetime) -> list[events.Event]:
        obj = load_object(frame)
        r = Reader(frame)
        if "op" in obj:
            return _reply(r, obj)
        topic = obj.get("topic")
        if topic == ACCOUNT_STREAM:
            kind = obj.get("type")
            if kind == "order":
                return self._order(r, obj, r.obj(obj, "data"), received)
            if kind == "balance":
                return self._balance(r, obj, r.obj(obj, "data"), received)
            raise r.fail(f"unknown pinfo type {kind!r} (expected 'order' or 'balance')")
        if topic == "dealinfo":
            return self._deals(r, obj, received)
        if topic == "depth":
            return self._depth(r, obj, received)
        raise r.fail(f"unknown topic {topic!r}")

    def _order(self, r: Reader, obj: Obj, data: Obj, received: datetime) -> list[events.Event]:
        w = "data."
        order_id = r.ident(data, "order_id", w)
        status = r.integer(data, "status", w)
        if status not in _STATUSES:
            raise r.fail(f"data.status {status} is not 0 (open), 2 (finished) or 4 (cancelled)")
        side = _SIDES.get(r.text(data, "type", w))
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

        if self.orders.is_closed(order_id):
            return []  # a late or repeated update for a finished order
        tracked = self.orders.get(order_id)
        price = limit or None
        fill_price = average or None
        fields: dict[str, Any] = {
            # the update carries no time of its own: ``timestamp`` is when the order was made
            **self._envelope(obj, received),
            "order_time": created,
            "order_id": order_id,
            "symbol": symbol,
            "side": side,
            "price": price,
            "amount": volume,
            "remaining": remain,
            "filled": sub(volume, remain),
            "fill_price": fill_price,
            "notional": notional,
            "slippage": slippage(side, price, fill_price),
        }
        out: list[events.Event] = []
        if status == _STATUS_OPEN:
            if tracked is None:
                self.orders.open(TrackedOrder(order_id, symbol, side, price, volume, remain))
                out.append(events.OrderPlaced(**fields))
                if remain < volume:
                    out.append(events.OrderPartiallyFilled(**fields, last_filled=fields["filled"]))
            elif tracked.remaining is not None and remain < tracked.remaining:
                last = sub(tracked.remaining, remain)
                tracked.remaining = remain
                out.append(events.OrderPartiallyFilled(**fields, last_filled=last))
            return out
        self.orders.close(order_id)
        if status == _STATUS_FILLED:
            return [events.OrderFilled(**fields)]
        if tracked is not None and tracked.remaining is not None and remain < tracked.remaining:
            last = sub(tracked.remaining, remain)
            out.append(events.OrderPartiallyFilled(**fields, last_filled=last))
        out.append(events.OrderCancelled(**fields))
        return out

    def _balance(self, r: Reader, obj: Obj, data: Obj, received: datetime) -> list[events.Event]:
        currency = r.text(data, "token", "data.").strip().upper()
        value = r.number(data, "value", "data.")
        last = self.balances.get(currency)
        self.balances[currency] = value
        if last is not None and value == last:
            return []
        return [
            events.BalanceChanged(
                **self._envelope(obj, received),
                currency=currency,
                balance=value,
                change=None if last is None else sub(value, last),
            )
        ]

    def _deals(self, r: Reader, obj: Obj, received: datetime) -> list[events.Event]:
        symbol = r.symbol(obj, "symbol")
        out: list[events.Event] = []
        for i, deal in enumerate(r.array(obj, "deals")):
            w = f"deals[{i}]."
            if not isinstance(deal, dict):
                raise r.fail(f"deals[{i}] must be an object")
            side = _DIRECT.get(r.integer(deal, "direct", w))
            if side is None:
                raise r.fail(f"{w}direct must be 0 (buy) or 1 (sell), not {deal['direct']!r}")
            out.append(
                events.Trade(
                    **self._envelope(obj, received, r.unix_millis(deal, "time", w)),
                    symbol=symbol,
                    price=r.number(deal, "price", w),
                    amount=r.number(deal, "vol", w),
                    side=side,
                )
            )
        return out

    def _depth(self, r: Reader, obj: Obj, received: datetime) -> list[events.Event]:
        symbol = r.symbol(obj, "symbol")
        bids = _levels(r, obj, "buy_book", best_first_highest=True)
        asks = _levels(r, obj, "sell_book", best_first_highest=False)
        change_id = r.integer(obj, "change_id")
        return [
            self._book_event(
                obj, received, symbol=symbol, bids=bids, asks=asks, change_id=change_id
            )
        ]


def _levels(
    r: Reader, obj: Obj, key: str, *, best_first_highest: bool
) -> tuple[events.PriceLevel, ...]:
    """One side of a depth frame, best first. ``index`` is not trusted for order: levels are
    sorted by price."""
    levels: list[events.PriceLevel] = []
    for i, level in enumerate(r.array(obj, key)):
        w = f"{key}[{i}]."
        if not isinstance(level, dict):
            raise r.fail(f"{key}[{i}] must be an object")
        levels.append((r.number(level, "price", w), r.number(level, "qty", w)))
    return sorted_levels(levels, best_first_highest=best_first_highest)


def _reply(r: Reader, obj: Obj) -> list[events.Event]:
    """A reply to something we sent: ok means nothing happened for the rules."""
    op, status, topic = obj.get("op"), obj.get("status"), obj.get("topic")
    if op not in ("subscribe", "unsubscribe", "login"):
        raise r.fail(f"unknown reply op {op!r}")
    if status == "ok":
        return []
    if status != "error":
        raise r.fail(f"{op} reply status must be 'ok' or 'error', not {status!r}")
    msg = obj.get("msg", "no reason given")
    if op == "login":
        raise r.fail(f"piexgo rejected the login: {msg}")
    raise r.fail(f"piexgo rejected {op} of topic {topic!r}: {msg}")
