"""What one account's decoder remembers about orders, so that updates become lifecycle events.

Exchanges push order *states*; rules want lifecycle *steps* (placed, partially filled, filled,
cancelled). ``OrderTracker`` keeps the last state of each open order and the ids of recently
closed ones, so that a repeated or late update (the same frame twice, a status-0 update after
the fill) produces no second event. Both maps are bounded so memory stays flat for months.
"""

from __future__ import annotations

from collections import OrderedDict
from decimal import Decimal

import attrs

from alertd.events import Side
from alertd.protocols._json import RATIO, sub

# Open orders remembered. Exchanges cap open orders per account far below this (a few hundred
# typically); the cap only matters for orders whose end we never saw (closed while offline),
# which would otherwise pile up. The oldest is forgotten first; if it speaks again it is
# treated as first seen.
MAX_OPEN_ORDERS = 10_000

# Closed order ids remembered. A late or replayed update for a closed order arrives within
# seconds to minutes (reordering, a re-sent snapshot after reconnect); 10,000 ids covers hours
# of a busy account's trading and costs well under a megabyte.
MAX_CLOSED_ORDERS = 10_000


@attrs.define
class TrackedOrder:
    """The last known state of one open order. ``amount`` (the original quantity) is None when
    the order was first seen mid-life on an exchange that reports only what remains."""

    order_id: str
    symbol: str
    side: Side | None
    price: Decimal | None
    amount: Decimal | None
    remaining: Decimal | None
    client_order_id: str | None = None


@attrs.define
class OrderTracker:
    """Open orders by id plus a bounded memory of closed ids; owned by one decoder."""

    max_open: int = MAX_OPEN_ORDERS
    max_closed: int = MAX_CLOSED_ORDERS
    _open: OrderedDict[str, TrackedOrder] = attrs.field(factory=OrderedDict, init=False)
    _closed: OrderedDict[str, None] = attrs.field(factory=OrderedDict, init=False)

    def get(self, order_id: str) -> TrackedOrder | None:
        return self._open.get(order_id)

    def is_closed(self, order_id: str) -> bool:
        return order_id in self._closed

    def open(self, order: TrackedOrder) -> None:
        """Remember ``order`` as open, forgetting the oldest open order past the bound."""
        self._open[order.order_id] = order
        if len(self._open) > self.max_open:
            self._open.popitem(last=False)

    def close(self, order_id: str) -> TrackedOrder | None:
        """Forget ``order_id`` as open and remember it as closed; its last state, if known."""
        order = self._open.pop(order_id, None)
        self._closed[order_id] = None
        if len(self._closed) > self.max_closed:
            self._closed.popitem(last=False)
        return order

    @property
    def open_count(self) -> int:
        return len(self._open)

    @property
    def closed_count(self) -> int:
        return len(self._closed)


def slippage(
    side: Side | None, price: Decimal | None, fill_price: Decimal | None
) -> Decimal | None:
    """Fraction by which ``fill_price`` is worse than the order's ``price`` (negative when
    better): ``(fill - price) / price`` for buys, ``(price - fill) / price`` for sells. None
    when either price is unknown or the order price is zero (a market order has no limit)."""
    if side is None or price is None or fill_price is None or not price:
        return None
    diff = sub(fill_price, price) if side == "buy" else sub(price, fill_price)
    return RATIO.divide(diff, price)
