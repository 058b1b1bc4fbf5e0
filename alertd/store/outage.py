"""Whether the shared database is away, since when, and the calls that wait for it to come
back (``postgres.PostgresDatabase``).

When the database does not answer (a restart, a failover, the network), a call is tried
again for ``[daemon] database_retry``; once those retries are spent the database is *away*:
one WARNING line, and from then on calls do not wait in a worker thread. Dispatch's writes
go to the spool (``spooling.SpoolingOutbox``); every other call (delivery's marks, rule state
saves, stream marks, statistics) waits in trio, cancellably, for the database to come back,
so its caller keeps what it has in memory and goes on from there (once the daemon stops, new
calls fail instead: ``stop_waiting``). The database's ``upkeep`` tries to reach it every
``PROBE_INTERVAL``; when it answers again, one line says so, the waiting calls go on, and the
spool is drained into the shared tables (``Spool.drain``) while dispatch's writes still go to
the spool, until it is empty (the order of alerts is kept).

One ``Outage`` belongs to one database object. ``away_since`` is set by the worker thread
whose call spent its retries (under the database's lock, so the next call in a thread fails
at once); everything else happens in trio: the one WARNING line when it goes away
(``went_away``), the waiting (``wait``), and the one line when it is back (``back``).
"""

from __future__ import annotations

import logging
import time

import attrs
import trio

from alertd.store.spool import OutageStatistics, Spool, waiting

log = logging.getLogger(__name__)


# Once the daemon stops, a call that was already waiting for the database waits this much
# longer at most (seconds), then fails: one made under a shield would hold the stop forever.
STOP_GRACE = 10.0


@attrs.define(eq=False)
class Outage:
    """See the module docstring. ``where`` names the database in log lines."""

    where: str
    spool: Spool | None = None
    away_since: float | None = None  # Unix seconds it went away; None while it answers
    # Unix seconds a call first found it not answering, while one is trying it again (its
    # retries not yet spent; the database may be back within them).
    unanswered_since: float | None = None
    stopping: bool = False  # the daemon stops: calls fail instead of waiting
    _told: bool = False  # this outage's WARNING line is out
    _give_up_at: float = float("inf")  # trio time waiting calls fail at (once stopping)
    _changed: trio.Event = attrs.field(factory=trio.Event)  # back, or stopping
    _gone: trio.Event = attrs.field(factory=trio.Event)  # set while it is away

    def is_away(self) -> bool:  # a method: a worker thread changes it between two reads
        return self.away_since is not None

    def message(self) -> str:
        since = time.strftime("%H:%M:%S", time.gmtime(self.away_since or time.time()))
        return f"the database {self.where} is unreachable since {since} UTC"

    def statistics(self) -> OutageStatistics | None:
        if self.spool is None:
            return None
        return OutageStatistics(
            away_since=self.away_since,
            unanswered_since=self.unanswered_since,
            spool=self.spool.statistics(),
        )

    def fails_now(self) -> bool:
        """Whether a call made now, the database away, fails instead of waiting."""
        return self.stopping or not waiting()

    def went_away(self, error: Exception) -> None:
        """A call found the database away (its retries spent): say so once, make calls wait."""
        if self._told or self.stopping:
            return
        self._told = True
        self._gone.set()
        spool = self.spool
        log.warning(
            "store.database_away %s; %s",
            error,
            "calls wait for it" if spool is None
            else f"alerts go to the spool {spool.path} (at most {spool.capacity}) until it is back",
        )  # fmt: skip

    async def wait(self) -> None:
        """Until the database is back; once the daemon stops, STOP_GRACE more at most."""
        while self.is_away() and trio.current_time() < self._give_up_at:
            with trio.move_on_at(self._give_up_at):
                await self._changed.wait()

    def _wake(self) -> None:
        self._changed.set()
        self._changed = trio.Event()

    async def gone(self) -> float:
        """Until the database is away; since when (Unix seconds)."""
        await self._gone.wait()
        return self.away_since or time.time()

    def back(self, since: float) -> None:
        """It answers again (``away_since`` cleared by the caller): say so, let calls go on."""
        self._gone = trio.Event()
        self._told = False
        self._wake()
        spool = self.spool
        log.info(
            "store.database_back database=%s after=%.1fs spooled=%d",
            self.where,
            time.time() - since,
            0 if spool is None else spool.statistics().alerts,
        )

    def stop_waiting(self) -> None:
        """The daemon stops: from now on a call that finds the database away fails at once,
        and those waiting already give up after STOP_GRACE (a stopping daemon's delivery
        workers are cancelled long before; see ``daemon.store_watch``)."""
        self.stopping = True
        self._give_up_at = trio.current_time() + STOP_GRACE
        self._wake()
