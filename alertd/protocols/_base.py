"""What both exchange decoders share: per-account state and the safety net around decoding."""

from __future__ import annotations

import logging
from datetime import datetime
from decimal import Decimal
from typing import Any

import attrs

from alertd.events import Book, Event, PriceLevel
from alertd.protocols import BUG_REASON, ProtocolError
from alertd.protocols._json import Obj, sub
from alertd.protocols.orders import OrderTracker

log = logging.getLogger("alertd.protocols")


@attrs.define
class DecoderBase:
    """One account's protocol state (order tracker, last balances). Subclasses set
    ``exchange`` and implement ``_decode``; ``decode`` turns any bug in it into a
    ``ProtocolError``, so a bug costs one frame, never the stream."""

    account: str
    exchange: str = attrs.field(default="", init=False)
    balances: dict[str, Decimal] = attrs.field(factory=dict, init=False)
    orders: OrderTracker = attrs.field(factory=OrderTracker, init=False)

    def decode(self, frame: str | bytes, received: datetime) -> list[Event]:
        """Events in one frame; ``ProtocolError`` (and nothing else) if it cannot be read.
        A frame that fails changes no state."""
        try:
            return self._decode(frame, received)
        except ProtocolError:
            raise
        except Exception as exc:  # a bug here must cost one frame, not the stream
            log.exception("protocol.bug exchange=%s account=%s", self.exchange, self.account)
            raise ProtocolError(f"{BUG_REASON} ({type(exc).__name__}: {exc})", frame) from exc

    def _decode(self, frame: str | bytes, received: datetime) -> list[Event]:
        raise NotImplementedError

    def _envelope(
        self, obj: Obj, received: datetime, time: datetime | None = None
    ) -> dict[str, Any]:
        """The fields every event of one frame carries: where it came from, when (``time``
        defaults to the receive time, for messages that carry none) and the raw frame."""
        return {
            "exchange": self.exchange,
            "account": self.account,
            "time": received if time is None else time,
            "received": received,
            "raw": obj,
        }

    def _book_event(
        self,
        obj: Obj,
        received: datetime,
        *,
        symbol: str,
        bids: tuple[PriceLevel, ...],
        asks: tuple[PriceLevel, ...],
        change_id: int | None = None,
    ) -> Book:
        """A book snapshot stamped with the receive time, its best prices and spread derived
        from ``bids`` and ``asks`` (each best first)."""
        best_bid = bids[0][0] if bids else None
        best_ask = asks[0][0] if asks else None
        return Book(
            **self._envelope(obj, received),
            symbol=symbol,
            bids=bids,
            asks=asks,
            best_bid=best_bid,
            best_ask=best_ask,
            spread=(None if best_bid is None or best_ask is None else sub(best_ask, best_bid)),
            change_id=change_id,
        )


def sorted_levels(levels: list[PriceLevel], *, best_first_highest: bool) -> tuple[PriceLevel, ...]:
    """One side of a book, best first: highest price first for bids, lowest for asks."""
    levels.sort(key=lambda lv: lv[0], reverse=best_first_highest)
    return tuple(levels)
