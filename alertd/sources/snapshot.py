"""The evidence of an offline ``stream.gap``: what moved while alertd was blind.

Two sources, both compared with the balances last seen before the gap (``OfflineWindow``):

- ``EvidenceWatch``: the first balance of each currency after the reconnect, from the
  account's own balance events. This needs nothing but what the protocol documents say; a
  currency whose first balance differs is a ``stream.gap.evidence`` after the gap.
- ``SnapshotReader``: Piexgo's balance snapshot, an extension of alertd's simulator. Right
  after acking a ``pinfo`` subscribe it sends one balance frame per token: the balances as
  they are now, which lands the evidence in the gap itself. It is read from the frames
  rather than from the decoder's events (a balance that did not change produces no event,
  and live updates that follow must not be mistaken for it): the run of ``pinfo`` balance
  frames right after the ack, ended by any other frame or a second frame for a token.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

import attrs

from alertd.events import BalanceChanged, BalanceEvidence, Event, StreamGap, StreamGapEvidence
from alertd.sources.outputs import Emit, Log, Output
from alertd.sources.streams import stream_fact


@attrs.frozen
class OfflineWindow:
    """An outage not yet reported as a gap, with the balances last seen before it. ``why``:
    ``offline``, or alertd itself was down (``alertd stopped``/``crashed``, ``down_for``)."""

    since: datetime
    before: Mapping[str, Decimal]
    why: str = "offline"
    down_for: float | None = None


@attrs.define
class EvidenceWatch:
    """An offline gap from its reconnect (``until``) on: ``report`` says the gap (with the
    snapshot's evidence, if one was read), ``balance`` looks at each balance event after it.
    What is found before the gap is reported waits in ``held``: the gap goes out first."""

    exchange: str
    account: str
    window: OfflineWindow
    until: datetime
    reported: bool = False
    seen: set[str] = attrs.field(factory=set)  # currencies whose first balance came
    held: list[BalanceEvidence] = attrs.field(factory=list)

    def report(self, snapshot: SnapshotReader | None, wall: datetime) -> list[Output]:
        """The ``stream.gap`` (at ``wall``), then the evidence found so far."""
        gap = self.window
        evidence = () if snapshot is None else snapshot.evidence(gap.before)
        covered = set() if snapshot is None else set(snapshot.balances)  # said in the gap
        self.reported, held, self.held = True, self.held, []
        self.seen |= covered
        gap_log = "stream.gap account=%s why=%s since=%s until=%s evidence=%d"
        args = (self.account, gap.why, gap.since.isoformat(), self.until.isoformat())
        out: list[Output] = [
            Log(logging.WARNING, gap_log, (*args, len(evidence))),
            self._fact(StreamGap, wall, evidence=evidence, down_for=gap.down_for),
        ]
        for found in held:
            if found.currency not in covered:
                out += self._evidence(found, wall)
        return out

    def balance(self, event: BalanceChanged, wall: datetime) -> list[Output]:
        """A ``stream.gap.evidence`` if ``event`` is its currency's first balance since the
        reconnect and differs from the last one before the gap (none if there was none)."""
        currency = event.currency
        if currency in self.seen:
            return []
        self.seen.add(currency)
        before = self.window.before.get(currency)
        if before is None or before == event.balance:
            return []
        found = BalanceEvidence(currency=currency, before=before, after=event.balance)
        if not self.reported:
            self.held.append(found)
            return []
        return self._evidence(found, wall)

    def _evidence(self, found: BalanceEvidence, wall: datetime) -> list[Output]:
        before, after, change = found.before, found.after, found.change
        assert before is not None and change is not None
        line = "stream.gap_evidence account=%s currency=%s before=%s after=%s"
        return [
            Log(logging.WARNING, line, (self.account, found.currency, before, after)),
            self._fact(
                StreamGapEvidence,
                wall,
                currency=found.currency,
                before=before,
                after=after,
                change=change,
            ),
        ]

    def _fact(self, cls: type[Event], wall: datetime, **fields: Any) -> Emit:
        """A fact about the gap (unbounded, as every fact about the connection)."""
        event = stream_fact(
            cls,
            exchange=self.exchange,
            account=self.account,
            at=wall,
            since=self.window.since,
            until=self.until,
            why=self.window.why,
            **fields,
        )
        return Emit(event)


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
