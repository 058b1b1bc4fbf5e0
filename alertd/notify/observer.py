"""What delivery reports as it goes, for metrics: each delivered message with its latency and
each failed attempt. The daemon's ``Metrics`` implements it; ``NoObserver`` ignores it."""

from __future__ import annotations

from typing import Protocol


class DeliveryObserver(Protocol):
    def delivered(self, channel: str, latency: float) -> None: ...
    def failed(self, channel: str) -> None: ...


class NoObserver:
    """Metrics switched off."""

    def delivered(self, channel: str, latency: float) -> None:
        pass

    def failed(self, channel: str) -> None:
        pass
