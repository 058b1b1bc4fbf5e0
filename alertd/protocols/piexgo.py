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
from decimal import Decimal
from typing import Any, ClassVar

import attrs
import msgspec

from alertd import events
from alertd.protocols._base import DecoderBase, StreamNames, sorted_levels
from alertd.protocols._json import Obj, Reader, load_object, sub
from alertd.protocols.orders import TrackedOrder, slippage
from alertd.protocols.piexgo_read import (
    STATUS_FILLED,
    STATUS_OPEN,
    DealValues,
    OrderValues,
    fast_balance,
    fast_deals,
    fast_order,
    read_balance,
    read_deals,
    read_order,
)

log = logging.getLogger(__name__)

EXCHANGE = "piexgo"
ACCOUNT_STREAM = "pinfo"
MARKET_TOPICS = ("dealinfo", "depth")


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

    # Order, balance and deals frames of the common, valid shape are read by the fast readers
    # (piexgo_read.fast_*); any other frame, and every frame when this is False (the tests'
    # reference), by the Reader-based ones, the one place a frame is rejected and says why.
    fast: ClassVar[bool] = True

    def _decode(self, frame: str | bytes, received: datetime) -> list[events.Event]:
        obj = load_object(frame)
        if self.fast:
            out = self._fast_events(obj, received)
            if out is not None:
                return out
        r = Reader(frame)
        if "op" in obj:
            return _reply(r, obj)
        topic = obj.get("topic")
        if topic == ACCOUNT_STREAM:
            kind = obj.get("type")
            if kind == "order":
                return self._order(obj, read_order(r, r.obj(obj, "data")), received)
            if kind == "balance":
                return self._balance(obj, read_balance(r, r.obj(obj, "data")), received)
            raise r.fail(f"unknown pinfo type {kind!r} (expected 'order' or 'balance')")
        if topic == "dealinfo":
            return self._deals(obj, read_deals(r, obj), received)
        if topic == "depth":
            return self._depth(r, obj, received)
        raise r.fail(f"unknown topic {topic!r}")

    def _fast_events(self, obj: Obj, received: datetime) -> list[events.Event] | None:
        """The events of an order, balance or deals frame the fast readers can read; None for
        any other frame (which may still be valid)."""
        if "op" in obj:
            return None
        topic = obj.get("topic")
        if topic == ACCOUNT_STREAM:
            data = obj.get("data")
            if type(data) is not dict:
                return None
            kind = obj.get("type")
            if kind == "order":
                order = fast_order(data)
                return None if order is None else self._order(obj, order, received)
            if kind == "balance":
                balance = fast_balance(data)
                return None if balance is None else self._balance(obj, balance, received)
            return None
        if topic == "dealinfo":
            deals = fast_deals(obj)
            return None if deals is None else self._deals(obj, deals, received)
        return None

    def _order(self, obj: Obj, order: OrderValues, received: datetime) -> list[events.Event]:
        order_id, status, side, symbol, limit, average, volume, remain, notional, created = order
        tracked = self.orders.get(order_id)
        if tracked is None and self.orders.is_closed(order_id):  # an open order is not closed
            return []  # a late or repeated update for a finished order
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
        if status == STATUS_OPEN:
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
        if status == STATUS_FILLED:
            return [events.OrderFilled(**fields)]
        if tracked is not None and tracked.remaining is not None and remain < tracked.remaining:
            last = sub(tracked.remaining, remain)
            out.append(events.OrderPartiallyFilled(**fields, last_filled=last))
        out.append(events.OrderCancelled(**fields))
        return out

    def _balance(
        self, obj: Obj, balance: tuple[str, Decimal], received: datetime
    ) -> list[events.Event]:
        currency, value = balance
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

    def _deals(self, obj: Obj, deals: DealValues, received: datetime) -> list[events.Event]:
        symbol, trades = deals
        envelope = self._envelope(obj, received)
        out: list[events.Event] = []
        for time, side, price, amount in trades:
            envelope["time"] = time  # what ``_envelope(obj, received, time)`` gives, once
            out.append(
                events.Trade(**envelope, symbol=symbol, price=price, amount=amount, side=side)
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
