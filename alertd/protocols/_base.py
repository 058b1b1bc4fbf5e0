"""What both exchange decoders share: per-account state and the safety net around decoding."""

from __future__ import annotations

import logging
from datetime import datetime
from decimal import Decimal
from typing import Any, ClassVar

import attrs

from alertd.events import Book, Event, PriceLevel, normalize_symbol
from alertd.protocols import BUG_REASON, ProtocolError
from alertd.protocols._json import Obj, sub
from alertd.protocols.orders import OrderTracker

log = logging.getLogger("alertd.protocols")


@attrs.frozen
class StreamNames:
    """An exchange's stream names: its account stream, and market streams ``<prefix>.<symbol>``
    (``markets``: the trade prefix, then the book's). ``symbol`` is how the valid forms name
    the symbol part; ``upper``: symbols are upper case in the canonical form, else lower."""

    exchange: str
    account: str
    markets: tuple[str, str]
    symbol: str
    example: str  # a market stream in its canonical form
    upper: bool = attrs.field(kw_only=True)

    def normalize(self, name: str) -> str:
        """The canonical form of a configured stream name; ``ValueError`` naming the valid
        forms."""
        text = name.strip()
        if text.lower() == self.account:
            return self.account
        prefix, dot, rest = text.partition(".")
        prefix, symbol = prefix.lower(), normalize_symbol(rest)
        if dot and prefix in self.markets and symbol:
            return f"{prefix}.{symbol if self.upper else symbol.lower()}"
        trades, books = self.markets
        raise ValueError(
            f"unknown {self.exchange} stream {name!r} (use '{self.account}', "
            f"'{trades}.<{self.symbol}>' or '{books}.<{self.symbol}>', e.g. '{self.example}')"
        )

    def is_market(self, name: str) -> bool:
        """True for trade and book streams (which get a staleness budget by default)."""
        return name.strip().partition(".")[0].lower() in self.markets


@attrs.define
class DecoderBase:
    """One account's protocol state (order tracker, last balances). Subclasses set ``names``
    (the exchange's name comes with them) and implement ``_decode``; ``decode`` turns any
    bug in it into a ``ProtocolError``, so a bug costs one frame, never the stream."""

    names: ClassVar[StreamNames]
    account: str
    exchange: str = attrs.field(init=False)
    balances: dict[str, Decimal] = attrs.field(factory=dict, init=False)
    orders: OrderTracker = attrs.field(factory=OrderTracker, init=False)

    @exchange.default
    def _exchange(self) -> str:
        return self.names.exchange

    def normalize_stream(self, name: str) -> str:
        return self.names.normalize(name)

    def is_market_stream(self, name: str) -> bool:
        return self.names.is_market(name)

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
