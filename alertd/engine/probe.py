"""The pipeline probe: proof that the pipeline moves end to end (issue 12), for the heartbeat.

A probe is one item an interval (daemon/health ``PipelineCheck`` sends it). It enters the
engine's input as a ``ProbeEvent``, on the channel events use, behind whatever is queued; the
engine turns it into a ``ProbeAlert`` (matching no rule, counting as no event); dispatch takes
it in order with the alerts, under its lock, and hands it to delivery's workers (``Workers``:
notify/worker ``ProbeDesk``), never to the outbox or a service. A worker waiting for rows sees
it at once; a busy one (reading the table, sending) when it next comes round its loop. So a
stage that is wedged (an engine that does not take events, a dispatcher stuck on its database
write, a send that never returns) holds the probe, and ``where`` says behind which stage.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import ClassVar, Literal, Protocol

import attrs
import trio

from alertd.events import Alert, Event

Target = tuple[str, int]  # a delivery worker: (channel name, URL index)
Stage = Literal["engine", "dispatch", "delivery", "back"]
KIND = "alertd.probe"


class Workers(Protocol):
    """Delivery's workers, as the probe meets them (notify/worker ``ProbeDesk``)."""

    def visit(self, probe: PipelineProbe) -> set[Target]:
        """Show ``probe`` to every worker; the busy ones, which call ``probe.seen`` when they
        come round, are returned (the free ones have seen it)."""
        ...


@attrs.define(eq=False)
class PipelineProbe:
    """One trip through the pipeline; owned by the trio thread. ``stage`` is what it waits for
    now; ``back`` is set once every stage (and every busy worker) has seen it."""

    number: int
    sent: float  # trio time it entered the engine's input
    workers: Workers
    stage: Stage = "engine"
    waiting: set[Target] = attrs.field(factory=set)  # busy workers that have not seen it
    back: trio.Event = attrs.field(factory=trio.Event)

    def event(self) -> ProbeEvent:
        now = datetime.now(UTC)
        return ProbeEvent(exchange="alertd", account="", time=now, received=now, probe=self)

    def passed_engine(self) -> ProbeAlert:
        """The engine took it (in order with the events before it): on to dispatch."""
        self.stage = "dispatch"
        return ProbeAlert(
            id=f"probe-{self.number}",
            rule="",
            key="",
            title="",
            body="",
            created=datetime.now(UTC),
            probe=self,
        )

    def passed_dispatch(self) -> None:
        """Dispatch took it (after the alerts before it): on to delivery's workers."""
        self.stage = "delivery"
        self.waiting = self.workers.visit(self)
        if not self.waiting:
            self._home()

    def seen(self, target: Target) -> None:
        """The worker of ``target`` came round its loop (or ended)."""
        self.waiting.discard(target)
        if not self.waiting and self.stage == "delivery":
            self._home()

    def _home(self) -> None:
        self.stage = "back"
        self.back.set()

    def where(self) -> str:
        """Behind which stage it is stuck, for a person."""
        if self.stage == "engine":
            return (
                "behind the engine (it has not taken the events queued before the probe; it may "
                "be waiting for dispatch to take its alerts)"
            )
        if self.stage == "dispatch":
            return "behind dispatch (it has not taken the alerts before the probe into the outbox)"
        if self.stage == "delivery":
            urls = ", ".join(f"{c} URL #{i}" for c, i in sorted(self.waiting))
            return f"behind delivery's worker for {urls} (a send or a read that has not returned)"
        return "back"


@attrs.frozen(kw_only=True)
class ProbeEvent(Event):
    """A probe on the engine's input; no rule matches it."""

    kind: ClassVar[str] = KIND
    probe: PipelineProbe = attrs.field(eq=False, repr=False)


@attrs.frozen(kw_only=True)
class ProbeAlert(Alert):
    """A probe on dispatch's input; never recorded, routed or counted as an alert."""

    probe: PipelineProbe = attrs.field(eq=False, repr=False)
