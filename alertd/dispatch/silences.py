"""Which silences mute an alert, and the daemon's cached view of the ``silences`` table
(``alertd.store.silences``), which ``alertd silence add`` (another process) writes.

The daemon keeps the silences in memory and re-reads them when SQLite's ``data_version`` says
another connection committed, checked every ``REFRESH_INTERVAL`` seconds: a silence added
from the command line takes effect within about a second, without a restart, and without a
query per alert. While the daemon runs, the check runs in a task of its own
(``keep_fresh``), so no alert waits on its way out for that read (in the alert's path it
was one database round trip a second, on the latency benchmark's p99). Times are Unix
seconds.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import trio

from alertd.dispatch.labels import alert_labels, glob_match
from alertd.events import Alert
from alertd.store.silences import Silence, add_silence, data_version, ensure_schema, list_silences
from alertd.store.sql import Connection, Store

REFRESH_INTERVAL = 1.0  # seconds between data_version checks


def matches(silence: Silence, alert: Alert) -> bool:
    """Whether ``silence`` covers ``alert``: its rule glob matches the alert's rule and each
    matcher's glob the alert's label of that name (a label the alert lacks never matches)."""
    if not glob_match(silence.rule, alert.rule):
        return False
    labels = alert_labels(alert)
    return all(
        key in labels and glob_match(value, labels[key]) for key, value in silence.matchers.items()
    )


class Silences:
    """The silences in ``db``, cached; ``match`` is a pure in-memory check."""

    def __init__(self, db: Store) -> None:
        self._db = db
        db.run_sync(ensure_schema)
        self._silences: list[Silence] = []
        self._version: int | None = None
        self._checked = -float("inf")
        self._kept_fresh = 0  # ``keep_fresh`` tasks running: ``refresh`` is then free

    async def load(self, now: float = float("-inf")) -> None:
        """Read every silence that has not ended by ``now``."""

        def go(conn: Connection) -> tuple[int, list[Silence]]:
            return data_version(conn), list_silences(conn, now=now)

        self._version, self._silences = await self._db.run(go)
        self._checked = trio.current_time()

    async def refresh(self, now: float = float("-inf")) -> None:
        """Re-read if another process changed the database; cheap to call often, and free
        while ``keep_fresh`` runs."""
        if self._version is not None and (
            self._kept_fresh or trio.current_time() - self._checked < REFRESH_INTERVAL
        ):
            return
        await self._check(now)

    async def keep_fresh(
        self,
        wall: Callable[[], float],
        *,
        task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Check every ``REFRESH_INTERVAL`` seconds, until cancelled, whether another process
        changed the silences (``wall`` gives Unix seconds)."""
        self._kept_fresh += 1
        try:
            task_status.started()
            while True:
                await trio.sleep(REFRESH_INTERVAL)
                await self._check(wall())
        finally:
            self._kept_fresh -= 1

    async def _check(self, now: float) -> None:
        self._checked = trio.current_time()
        version = await self._db.run(data_version)
        if version != self._version:
            await self.load(now)

    async def add(
        self, *, rule: str, matchers: Mapping[str, str], starts: float, ends: float, comment: str
    ) -> Silence:
        """Add a silence from inside the daemon (tests, a future API)."""
        silence = await self._db.run(
            lambda conn: add_silence(
                conn, rule=rule, matchers=matchers, starts=starts, ends=ends, comment=comment
            )
        )
        self._silences.append(silence)
        return silence

    def any_active(self, now: float) -> bool:
        """Whether any silence is in force at ``now`` (else ``match`` is None for every alert)."""
        return any(s.active(now) for s in self._silences)

    def match(self, alert: Alert, now: float) -> Silence | None:
        """The silence that mutes ``alert`` at ``now``, if any."""
        for silence in self._silences:
            if silence.active(now) and matches(silence, alert):
                return silence
        return None
