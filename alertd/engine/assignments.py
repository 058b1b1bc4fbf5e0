"""The engine's side of replicas (alertd.cluster): the cluster says which accounts this
replica owns and watches (``Assignments.assign``, from its own task); the engine's task
follows (``follow``), one assignment after another, and the engine (``Owners``) does the
rest: an account given up stops firing timers here at once, and its last unsaved changes go
to the shared table with the next save; an account gained is adopted from the shared table
``ADOPT_DELAY`` later, once its previous owner has saved what it gave up, and only then fires.

A summary this replica decides (rule_types/summary) is finished here too
(``finish_summaries``): ``GATHER_DELAY`` after it fell due, once the other owners have saved
their accounts' counts of the period, the shared rows are read and it goes out with them.

A cluster's first assignment, made while no other replica runs (``continuing`` False: the
cluster starting, or alone), is no takeover: the engine keeps what it restored at start, as a
single daemon does after a restart. Any later gain continues from the previous owner's rows.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import attrs
import trio

from alertd.engine.engine import Engine
from alertd.events import Alert
from alertd.store.rule_state import StateRow

log = logging.getLogger(__name__)

# Seconds between gaining an account and reading its rows: the replica that gave it up saves
# its last changes within task.STATE_SAVE_INTERVAL (1 s) of doing so; rounds of replicas
# differ by a little too.
ADOPT_DELAY = 1.5
# Seconds between a summary falling due here and reading the other owners' counts: each of
# them closes the period at the same due time (by its own clock) and saves within
# task.STATE_SAVE_INTERVAL; clocks of replicas differ by a little too.
GATHER_DELAY = 3.0
LOAD_TIMEOUT = 10.0  # seconds for the read of the shared rows; past it the account starts anew


@attrs.frozen(kw_only=True)
class Assignment:
    owned: frozenset[str]  # the accounts whose timers this replica decides
    watched: frozenset[str]  # the accounts whose events it receives (owned among them)
    continuing: bool  # whether other replicas ran before: a gain is a takeover


@attrs.define(eq=False)
class Assignments:
    """The latest assignment, for the engine's task to follow; owned by one trio run."""

    _latest: Assignment | None = None
    _changed: trio.Event = attrs.field(factory=trio.Event)

    def assign(self, assignment: Assignment) -> None:
        if assignment != self._latest:
            self._latest = assignment
            self._changed.set()

    async def follow(
        self, engine: Engine, *, wake: Callable[[], None], save: Callable[[], None]
    ) -> None:
        """Apply each assignment to ``engine`` until cancelled; ``wake`` makes the engine's
        loop look at its timers again, ``save`` asks for a save of its state changes."""
        applied: Assignment | None = None
        fresh: frozenset[str] = frozenset()  # accounts whose every event the engine has had
        while True:
            await self._changed.wait()
            self._changed = trio.Event()
            latest = self._latest
            assert latest is not None
            if applied is None:
                fresh = latest.watched
                gained = latest.owned if latest.continuing else frozenset()
            else:
                fresh &= latest.watched
                gained = latest.owned - applied.owned
            engine.own(latest.owned - gained)
            save()  # what was given up, to the shared table for its next owner
            wake()
            if gained:
                await trio.sleep(ADOPT_DELAY)
                rows = await _shared_rows(engine)
                engine.adopt(trio.current_time(), gained, rows, fresh=fresh & gained)
                engine.own(latest.owned)
                fresh |= gained & latest.watched
                wake()
            applied = latest


async def finish_summaries(
    engine: Engine,
    send: trio.MemorySendChannel[Alert],
    *,
    on_alert: Callable[[Alert], None] | None = None,
) -> None:
    """Send each summary ``engine`` decides (``Owners.take_rounds``) ``GATHER_DELAY`` after
    it fell due, with the other owners' counts from the shared rows, until cancelled."""
    while True:
        wanted = trio.Event()
        engine.owners.on_round = wanted.set
        rounds = engine.owners.take_rounds()
        if not rounds:
            await wanted.wait()
            continue
        await trio.sleep(GATHER_DELAY)
        rows = await _shared_rows(engine, "summary", "counted here only")
        for alert in engine.owners.finish(rounds, rows, trio.current_time()):
            if on_alert is not None:
                on_alert(alert)
            await send.send(alert)


async def _shared_rows(
    engine: Engine, what: str = "adopt", instead: str = "watched anew"
) -> list[StateRow]:
    """The shared table's rows; none (logged) when it cannot be read in time: the accounts
    gained are then watched anew, as at a start (fail open); a summary has this replica's
    counts only."""
    if engine.state is None:
        return []
    with trio.move_on_after(LOAD_TIMEOUT):
        try:
            return await engine.state.load()
        except Exception as e:  # the database away: go on without rather than not at all
            log.warning("engine.%s_read_failed error=%s (%s)", what, e, instead)
            return []
    log.warning("engine.%s_read_timeout after=%.0fs (%s)", what, LOAD_TIMEOUT, instead)
    return []
