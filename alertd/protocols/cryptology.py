"""Cryptology server messages (``cryptology-server-messages.rst``), sans-IO.

Cryptology pushes a partner's order and wallet messages, trades and books without any
subscription, so there is nothing to send: ``subscribe_frames`` and ``unsubscribe_frames``
return ``[]``. alertd still defines stream names, so that configs can choose what they watch
(the sources layer drops events of streams not configured, via ``stream_for``) and so that
staleness budgets have something to attach to:

- ``account``: order lifecycle, ``SetBalance``, ``InsufficientFunds``;
- ``trades.<PAIR>``: ``AnonymousTrade`` for that pair (e.g. ``trades.BTC_USD``);
- ``book.<PAIR>``: ``OrderBookAgg`` for that pair (e.g. ``book.BTC_USD``).

Names are accepted in any case and normalized (``trades.btc-usd`` is ``trades.BTC_USD``).

Readings of the document:

- ``time`` is ``[unix seconds, microseconds]`` and becomes the exact UTC event ``time``;
  messages without it (``InsufficientFunds``, ``OrderBookAgg``) take the receive time.
- ``amount`` of ``...OrderAmountChanged`` is the order's new *remaining* amount: the fill is
  the drop from the last remaining amount known for the order. An update that does not lower
  it (a repeat, or a late one) produces nothing. For an order first seen mid-life, the
  original amount and the cumulative fill are unknown (None).
- ``...OrderClosed`` has no amount: the event takes the order's amount from the tracker
  (filled = amount, remaining = 0) when the order was seen placed, else None.
- ``closed_inline`` on ``...OrderPlaced`` gives ``order.placed`` then ``order.filled``.
- Cryptology reports no execution prices, so ``fill_price`` and ``slippage`` are None and
  ``notional`` is the filled amount valued at the order's limit ``price`` (an order executes at
  its limit or better, so this is the most the fill cost a buyer / the least a seller got).
- ``maker_buy`` of ``AnonymousTrade`` true means the resting (maker) order was the buy, so the
  taker sold: the trade's ``side`` (the taker's) is ``sell``; false gives ``buy``.
- ``SetBalance`` carries its own ``change`` and ``reason``, used as sent (change may be
  negative, balance may not).
- ``client_order_id`` is optional (absent or null gives None) and carried as a string.

Login replies agreed with our simulator (``{"op": "login", "status": "ok" | "error"}``)
decode to no events, or ``ProtocolError`` naming the server's ``msg``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any, ClassVar

import attrs

from alertd import events
from alertd.protocols._base import DecoderBase, StreamNames, sorted_levels
from alertd.protocols._json import Obj, Reader, load_object, mul, sub
from alertd.protocols.orders import TrackedOrder

log = logging.getLogger(__name__)

EXCHANGE = "cryptology"
ACCOUNT_STREAM = "account"
MARKET_PREFIXES = ("trades", "book")

_ORDER_STEPS = ("OrderPlaced", "OrderAmountChanged", "OrderCancelled", "OrderClosed")
# "@type" of each order message -> (side, step)
_BUY: events.Side = "buy"
_SELL: events.Side = "sell"
_ORDER_TYPES: dict[str, tuple[events.Side, str]] = {
    f"{prefix}{step}": (side, step)
    for prefix, side in (("Buy", _BUY), ("Sell", _SELL))
    for step in _ORDER_STEPS
}


NAMES = StreamNames(EXCHANGE, ACCOUNT_STREAM, MARKET_PREFIXES, "PAIR", "book.BTC_USD", upper=True)
normalize_stream = NAMES.normalize
is_market_stream = NAMES.is_market


@attrs.define
class CryptologyDecoder(DecoderBase):
    """One Cryptology account's protocol state: the order tracker and the last balances."""

    names: ClassVar[StreamNames] = NAMES

    def subscribe_frames(self, streams: Sequence[str]) -> list[str]:
        """Nothing: Cryptology pushes everything unasked. Stream names are still checked."""
        for name in streams:
            normalize_stream(name)
        return []

    def unsubscribe_frames(self, streams: Sequence[str]) -> list[str]:
        return self.subscribe_frames(streams)

    def stream_for(self, event: events.Event) -> str | None:
        """The stream ``event`` belongs to (see the module docstring); None for others."""
        if isinstance(event, events.OrderEvent | events.BalanceChanged | events.FundsInsufficient):
            return ACCOUNT_STREAM
        if isinstance(event, events.Trade):
            return "trades." + event.symbol
        if isinstance(event, events.Book):
            return "book." + event.symbol
        return None

    def _decode(self, frame: str | bytes, received: datetime) -> list[events.Event]:
        obj = load_object(frame)
        r = Reader(frame)
        kind = obj.get("@type")
        order = _ORDER_TYPES.get(kind) if isinstance(kind, str) else None
        if order is not None:
            return self._order(r, obj, order[0], order[1], received)
        if kind == "SetBalance":
            return self._balance(r, obj, received)
        if kind == "InsufficientFunds":
            return [
                events.FundsInsufficient(
                    **self._envelope(obj, received),
                    order_id=r.ident(obj, "order_id"),
                    currency=r.text(obj, "currency").strip().upper(),
                )
            ]
        if kind == "AnonymousTrade":
            return [
                events.Trade(
                    **self._envelope(obj, received, r.seconds_micros(obj, "time")),
                    symbol=r.symbol(obj, "trade_pair"),
                    price=r.number(obj, "price"),
                    amount=r.number(obj, "amount"),
                    side="sell" if r.boolean(obj, "maker_buy") else "buy",
                )
            ]
        if kind == "OrderBookAgg":
            return [self._book(r, obj, received)]
        if kind is None and "op" in obj:
            return _reply(r, obj)
        raise r.fail(f"unknown @type {kind!r}")

    def _order(
        self, r: Reader, obj: Obj, side: events.Side, step: str, received: datetime
    ) -> list[events.Event]:
        common: dict[str, Any] = {
            **self._envelope(obj, received, r.seconds_micros(obj, "time")),
            "order_id": r.ident(obj, "order_id"),
            "client_order_id": r.opt_ident(obj, "client_order_id"),
            "symbol": r.symbol(obj, "trade_pair"),
            "side": side,
        }
        if step == "OrderPlaced":
            return self._placed(r, obj, common)
        if step == "OrderAmountChanged":
            return self._amount_changed(r, obj, common)
        return self._ended(common, cancelled=step == "OrderCancelled")

    def _placed(self, r: Reader, obj: Obj, common: dict[str, Any]) -> list[events.Event]:
        amount = r.number(obj, "amount")
        price = r.number(obj, "price")
        inline = r.boolean(obj, "closed_inline")
        order_id = common["order_id"]
        if self.orders.is_closed(order_id) or self.orders.get(order_id) is not None:
            return []  # a repeat
        zero = Decimal(0)
        placed = events.OrderPlaced(
            **common, price=price, amount=amount, remaining=amount, filled=zero, notional=zero
        )
        if not inline:
            tracked = TrackedOrder(
                order_id,
                common["symbol"],
                common["side"],
                price,
                amount,
                amount,
                common["client_order_id"],
            )
            self.orders.open(tracked)
            return [placed]
        self.orders.close(order_id)
        filled = events.OrderFilled(
            **common,
            price=price,
            amount=amount,
            remaining=zero,
            filled=amount,
            notional=_notional(amount, price),
        )
        return [placed, filled]

    def _amount_changed(self, r: Reader, obj: Obj, common: dict[str, Any]) -> list[events.Event]:
        remaining = r.number(obj, "amount")  # the NEW remaining amount, not the fill
        order_id = common["order_id"]
        if self.orders.is_closed(order_id):
            return []
        tracked = self.orders.get(order_id)
        if tracked is None:  # first seen mid-life: remember what remains, fill unknown
            self.orders.open(
                TrackedOrder(
                    order_id,
                    common["symbol"],
                    common["side"],
                    None,
                    None,
                    remaining,
                    common["client_order_id"],
                )
            )
            return [events.OrderPartiallyFilled(**common, remaining=remaining)]
        if tracked.remaining is None or remaining >= tracked.remaining:
            return []  # a repeat or a late update
        last = sub(tracked.remaining, remaining)
        tracked.remaining = remaining
        filled = None if tracked.amount is None else sub(tracked.amount, remaining)
        return [
            events.OrderPartiallyFilled(
                **_known(common, tracked),
                amount=tracked.amount,
                remaining=remaining,
                filled=filled,
                notional=_notional(filled, tracked.price),
                last_filled=last,
            )
        ]

    def _ended(self, common: dict[str, Any], *, cancelled: bool) -> list[events.Event]:
        """``...OrderCancelled`` / ``...OrderClosed``: the end of the lifecycle."""
        order_id = common["order_id"]
        if self.orders.is_closed(order_id):
            return []
        tracked = self.orders.close(order_id)
        if tracked is None:
            if cancelled:
                return [events.OrderCancelled(**common)]
            return [events.OrderFilled(**common, remaining=Decimal(0))]  # closed = fully executed
        known = _known(common, tracked)
        amount, remaining = tracked.amount, tracked.remaining
        if cancelled:
            filled = None
            if amount is not None and remaining is not None:
                filled = sub(amount, remaining)
            return [
                events.OrderCancelled(
                    **known,
                    amount=amount,
                    remaining=remaining,
                    filled=filled,
                    notional=_notional(filled, tracked.price),
                )
            ]
        return [
            events.OrderFilled(
                **known,
                amount=amount,
                remaining=Decimal(0),
                filled=amount,
                notional=_notional(amount, tracked.price),
            )
        ]

    def _balance(self, r: Reader, obj: Obj, received: datetime) -> list[events.Event]:
        currency = r.text(obj, "currency").strip().upper()
        balance = r.number(obj, "balance")
        change = r.number(obj, "change", signed=True)
        reason = r.opt_text(obj, "reason")
        time = r.seconds_micros(obj, "time")
        self.balances[currency] = balance
        return [
            events.BalanceChanged(
                **self._envelope(obj, received, time),
                currency=currency,
                balance=balance,
                change=change,
                reason=reason,
            )
        ]

    def _book(self, r: Reader, obj: Obj, received: datetime) -> events.Book:
        symbol = r.symbol(obj, "trade_pair")
        bids = _levels(r, obj, "buy_levels", best_first_highest=True)
        asks = _levels(r, obj, "sell_levels", best_first_highest=False)
        return self._book_event(obj, received, symbol=symbol, bids=bids, asks=asks)


def _known(common: dict[str, Any], tracked: TrackedOrder | None) -> dict[str, Any]:
    """``common`` plus the limit price remembered for the order, and its client id if this
    message lacks one."""
    if tracked is None:
        return common
    out = {**common, "price": tracked.price}
    if out["client_order_id"] is None:
        out["client_order_id"] = tracked.client_order_id
    return out


def _notional(filled: Decimal | None, price: Decimal | None) -> Decimal | None:
    return None if filled is None or price is None else mul(filled, price)


def _levels(
    r: Reader, obj: Obj, key: str, *, best_first_highest: bool
) -> tuple[events.PriceLevel, ...]:
    """One side of an aggregated book (``{price: volume}``), best first."""
    side = r.obj(obj, key)
    levels = [
        (r.number_value(price, f"{key} price", ""), r.number_value(qty, f"{key}[{price}]", ""))
        for price, qty in side.items()
    ]
    return sorted_levels(levels, best_first_highest=best_first_highest)


def _reply(r: Reader, obj: Obj) -> list[events.Event]:
    op, status = obj.get("op"), obj.get("status")
    if op != "login":
        raise r.fail(f"unknown reply op {op!r}")
    if status == "ok":
        return []
    if status == "error":
        raise r.fail(f"cryptology rejected the login: {obj.get('msg', 'no reason given')}")
    raise r.fail(f"login reply status must be 'ok' or 'error', not {status!r}")
