"""Sans-IO exchange protocols: frames in, normalized events out. No trio, no sockets.

Each exchange module provides a decoder class with this shape (see ``Decoder``): it builds the
frames a client sends, and turns one received frame into a list of events. A frame it cannot
read raises ``ProtocolError`` and nothing else.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Protocol

from alertd.events import Event

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
