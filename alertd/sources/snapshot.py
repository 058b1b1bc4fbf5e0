"""Piexgo's balance snapshot after a reconnect, for the evidence of an offline ``stream.gap``.

Right after acking a ``pinfo`` subscribe, the Piexgo server sends one balance frame per token:
the balances as they are now. Compared with the last balances seen before the connection was
lost, they show what moved while alertd was blind.

The snapshot is read from the frames themselves rather than from the decoder's events: a
balance that did not change produces no event, and live balance updates that follow the
snapshot must not be mistaken for it. The snapshot is the run of ``pinfo`` balance frames
right after the ack; it ends at the first other frame or at a second frame for a token
already seen (live activity).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from typing import Any

import attrs

from alertd.events import BalanceEvidence


@attrs.define
class SnapshotReader:
    """Fed every frame after a reconnect; ``done`` once the snapshot is complete. Pure: stream
    health (``health``) feeds it and decides how long to wait for it."""

    balances: dict[str, Decimal] = attrs.field(factory=dict)
    started: bool = False
    done: bool = False

    def feed(self, frame: str | bytes) -> None:
        if self.done:
            return
        obj = _load(frame)
        if not self.started:
            self.started = (
                obj.get("op") == "subscribe"
                and obj.get("topic") == "pinfo"
                and obj.get("status") == "ok"
            )
            return
        data = obj.get("data")
        if obj.get("topic") == "pinfo" and obj.get("type") == "balance" and isinstance(data, dict):
            token, value = data.get("token"), data.get("value")
            if isinstance(token, str) and token.strip().upper() not in self.balances:
                try:
                    # str() first: a JSON number arrives as float, the snapshot wants its text
                    self.balances[token.strip().upper()] = Decimal(str(value))
                    return
                except InvalidOperation:
                    pass  # a bad frame ends the snapshot; the decoder reports it
        self.done = True

    def evidence(self, before: Mapping[str, Decimal]) -> tuple[BalanceEvidence, ...]:
        """The balances of the snapshot (so far) that differ from ``before``, by currency."""
        return tuple(
            BalanceEvidence(currency=c, before=before.get(c), after=after)
            for c, after in sorted(self.balances.items())
            if before.get(c) != after
        )


def _load(frame: str | bytes) -> dict[str, Any]:
    try:
        obj = json.loads(frame)
    except ValueError:
        return {}
    return obj if isinstance(obj, dict) else {}
