"""Sans-IO exchange protocols: frames in, normalized events out. No trio, no sockets.

Each exchange module provides a decoder class with this shape (see ``Decoder``): it builds the
frames a client sends, and turns one received frame into a list of events. A frame it cannot
read raises ``ProtocolError`` and nothing else.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from typing import Protocol

from alertd.events import Event

# Start of a ProtocolError's reason when a decoder failed on a frame in a way it did not foresee
# (a bug): the frame is still skipped, and tests assert this never happens.
BUG_REASON = "decoder bug"

EXCERPT_CHARS = 200  # enough to recognise a frame in a log line, short enough to never flood it


def excerpt(frame: str | bytes, limit: int = EXCERPT_CHARS) -> str:
    """The start of a frame, printable, for error messages and logs."""
    text = frame.decode("utf-8", "replace") if isinstance(frame, bytes) else frame
    return text if len(text) <= limit else text[:limit] + f"...(+{len(text) - limit} chars)"


class ProtocolError(Exception):
    """A frame the protocol layer cannot read. ``reason`` says what is wrong, ``excerpt`` shows
    the start of the frame."""

    def __init__(self, reason: str, frame: str | bytes = "") -> None:
        self.reason = reason
        self.excerpt = excerpt(frame)
        super().__init__(f"{reason}: {self.excerpt}" if self.excerpt else reason)


class Decoder(Protocol):
    """One account's protocol state (order tracker, last balances)."""

    exchange: str
    account: str

    def subscribe_frames(self, streams: Sequence[str]) -> list[str]:
        """Frames to send after connecting (and logging in) so that ``streams`` flow."""
        ...

    def unsubscribe_frames(self, streams: Sequence[str]) -> list[str]: ...

    def decode(self, frame: str | bytes, received: datetime) -> list[Event]:
        """Events in one received frame; ``ProtocolError`` if it cannot be read."""
        ...

    # Last balance seen per currency, for gap evidence after a reconnect.
    balances: dict[str, Decimal]

    def stream_for(self, event: Event) -> str | None:
        """The (normalized) stream name ``event`` belongs to; None if it came from no frame."""
        ...

    def normalize_stream(self, name: str) -> str:
        """The canonical form of a configured stream name; ``ValueError`` if it is unknown."""
        ...

    def is_market_stream(self, name: str) -> bool:
        """True for trade and book streams, which get a staleness budget by default."""
        ...


EXCHANGES = ("piexgo", "cryptology")


def decoder_for(exchange: str, account: str) -> Decoder:
    """A fresh decoder for ``account`` on ``exchange``; ``ValueError`` for an unknown one."""
    # Imported here because the exchange modules import ProtocolError from this module.
    if exchange == "piexgo":
        from alertd.protocols.piexgo import PiexgoDecoder

        return PiexgoDecoder(account)
    if exchange == "cryptology":
        from alertd.protocols.cryptology import CryptologyDecoder

        return CryptologyDecoder(account)
    raise ValueError(f"unknown exchange {exchange!r} (use one of {', '.join(EXCHANGES)})")
