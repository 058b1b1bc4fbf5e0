"""What both exchange decoders share: per-account state and the safety net around decoding."""

from __future__ import annotations

import logging
from datetime import datetime
from decimal import Decimal

import attrs

from alertd.events import Event
from alertd.protocols import BUG_REASON, ProtocolError
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
