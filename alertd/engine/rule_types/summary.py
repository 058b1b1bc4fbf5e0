"""``type = "summary"``: a digest on a schedule (``every = "1d"``, ``at = "08:00"`` in the
configured ``[daemon] timezone``), the daily proof of life through the user's own channel: a
person who stops getting it knows something is wrong.

Per account it counts fills and cancels with their notional, blind windows (``stream.gap``)
with their lengths, disconnects, stale streams and unreadable frames, and says how the
account's connection stands now. The counts are rule state (one row per account, and one for
the schedule), saved and restored as every rule's is: they survive a restart, and a summary
that fell due while alertd was down goes out at start, marked late (one, not a backlog).

What alertd itself did (messages sent, failed, waiting) and what is silenced are read from
the state database (the ``outbox`` and ``silences`` tables) at the moment the summary is
built, rather than fed in by dispatch and delivery. Why: those tables are the truth the user
can check (``alertd silence list``, the outbox), they already survive a restart, and reading
them keeps the engine below dispatch and notify (nothing of theirs is imported) with no
second book of their counts to keep in step. The cost is one small read (a scan of the
outbox, which keeps a week of rows), once per summary, on the engine's thread, through a
connection of its own: in WAL mode a reader waits for no writer, so the engine is not held
up by the store's worker thread. On the PostgreSQL database replicas share, a read on the
engine's thread could wait out a database outage (the store retries for seconds), which
would stall every stream: there, as for an engine given no state database (tools, tests),
the digest says the messages were not counted.

Replicas (engine/owners): each account's counts are its owner's (the replica that reports
it, the one that sees all its events), saved in its ``account:NAME`` row, the shared truth;
the others' counts of it are not saved. Every replica keeps the schedule and reaches each due
time, the same one on every replica (``next_due`` of the config and the last due time), by
its own clock. There each closes the period: it starts its counts over and keeps the closed
period in its own accounts' rows (``closed``, tagged with that due time; the counts it goes
on with are tagged with the next). The owner of the summary's first account (in name order:
a choice every replica makes alike from the cluster's assignment) makes the summary: it
hands the closed period (a ``Round``) to its engine task, which reads the shared rows
``assignments.GATHER_DELAY`` later, off the engine's thread, after every owner closed and
saved, and ``finish`` builds the report from them (an owner not there yet: the counts it
last saved, of that period still). Why the closed period in the row rather than a reset
sent by the replica that made the summary: the reset needs no message between replicas and
no read by the owners, it cannot race the read of the counts, and a summary sent twice
(a takeover) shows the same counts. A single daemon (no owners) does as before.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import closing
from datetime import time
from typing import Any

import attrs

from alertd.engine.alerts import build_alert, timer_identity
from alertd.engine.rule_types.base import RuleEvaluator
from alertd.engine.rule_types.schedule import next_due
from alertd.engine.rule_types.summary_counts import Account, at, period_counts
from alertd.events import Alert, Event
from alertd.messages.daily import DailyReport, Deliveries, SilenceNote, daily_text
from alertd.messages.formats import zone
from alertd.store.database import Database
from alertd.store.rule_state import StateRow
from alertd.store.silences import list_silences
from alertd.store.sql import Connection, Store

log = logging.getLogger(__name__)

DEFAULT_EVERY = 86400.0
DEFAULT_AT = "08:00"
SCHEDULE = "~schedule"  # the state key of the schedule (account keys are "account:NAME")
TAG = "due"
UNASSIGNED_WAIT = 1.0  # seconds between looks, in a replica waiting for its first assignment
READ_TIMEOUT = 1.0  # seconds the summary's read may wait for the database file (it is rare)


FINISHED = ("delivered", "expired", "silenced", "inhibited")
# Each on the outbox's (status, due_since) index: a range of it, not a scan of the table.
_FINISHED_SQL = "SELECT COUNT(*) FROM outbox WHERE status=? AND due_since>=? AND due_since<?"
_PENDING_SQL = (
    "SELECT channel, attempts > 0, COUNT(*) FROM outbox WHERE status='pending' "
    "GROUP BY channel, attempts > 0"
)


def _facts(conn: Connection, since: float, until: float) -> tuple[Deliveries, list[SilenceNote]]:
    """The messages that fell due in [since, until) by what became of them, those waiting
    now (with the channels whose waiting messages failed before), and the silences in
    force at ``until``."""
    counts = {
        status: int(conn.execute(_FINISHED_SQL, (status, since, until)).fetchone()[0])
        for status in FINISHED
    }
    waiting, failing = 0, set()
    for channel, tried, n in conn.execute(_PENDING_SQL).fetchall():
        waiting += int(n)
        if tried:
            failing.add(str(channel))
    deliveries = Deliveries(
        sent=counts["delivered"],
        failed=counts["expired"],
        waiting=waiting,
        muted=counts["silenced"] + counts["inhibited"],
        failing=tuple(sorted(failing)),
    )
    silences = [
        SilenceNote(rule=s.rule, matchers=dict(s.matchers), ends=at(s.ends), comment=s.comment)
        for s in list_silences(conn, now=until)
        if s.active(until)
    ]
    return deliveries, silences


@attrs.frozen(kw_only=True, eq=False)
class Round:
    """One period of a summary, closed when it fell due (epoch seconds): its counts as this
    engine had them, and the accounts it owned then (None: a single daemon, all)."""

    rule: SummaryRule
    since: float
    until: float
    due: float
    late: bool
    counts: Mapping[str, Account]
    owned: frozenset[str] | None


class SummaryRule(RuleEvaluator):
    store: Store | None = None  # the state database (evaluator_for sets it when there is one)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.accounts: dict[str, Account] = {}
        self.watching: list[str] = []
        self.since: float | None = None  # epoch: the period's start
        self.due: float | None = None  # epoch: the next summary
        self.late = False  # the due time passed while alertd was down
        self._now = 0.0  # the last trio time the engine gave
        # Replicas only (engine/owners sets these when the schedule comes due): the accounts
        # this replica owns, where a round it decides waits, and its accounts' last period.
        self.owned: frozenset[str] | None = None
        self.gather: Callable[[Round], None] | None = None
        self.closed: dict[str, dict[str, Any]] = {}

    # -- schedule --------------------------------------------------------------------------

    @property
    def every(self) -> float:
        return self.rule.settings.every or DEFAULT_EVERY

    @property
    def at(self) -> time:
        return time.fromisoformat(self.rule.settings.at or DEFAULT_AT)

    def _next(self, after: float, last: float | None) -> float:
        tz = zone(self.rule.timezone)
        return next_due(after, every=self.every, at=self.at, tz=tz, last=last)

    def _arm(self) -> None:
        assert self.due is not None
        self.arm(SCHEDULE, TAG, max(self.clock.mono(self.due), self._now))
        self.mark(SCHEDULE)

    def start(self, now: float, accounts: Iterable[str]) -> None:
        self._now = now
        self._declare(accounts)
        epoch = self.clock.epoch(now)
        if self.since is None:
            self.since = epoch
        if self.due is None:
            self.due = self._next(epoch, None)
        self.late = self.due <= epoch
        self._arm()

    def rebind(self, rule: Any) -> None:
        old = (self.every, self.at)
        super().rebind(rule)
        if (self.every, self.at) != old:  # the schedule was edited: the next time is new
            self.due = self._next(self.clock.epoch(self._now), None)
            self.late = False
            self._arm()

    def accounts_changed(
        self, now: float, accounts: Iterable[str], removed: frozenset[str]
    ) -> None:
        self._now = now
        for name in removed:
            if self.accounts.pop(name, None) is not None:
                self.mark(f"account:{name}")
        self._declare(accounts)

    def _declare(self, accounts: Iterable[str]) -> None:
        names = self.rule.accounts if self.rule.accounts is not None else accounts
        self.watching = sorted(names)
        for name in self.watching:
            self.accounts.setdefault(name, Account())

    # -- counting --------------------------------------------------------------------------

    def on_event(self, event: Event, ctx: dict[str, Any], now: float) -> list[Alert]:
        self._now = now
        acct = self.accounts.setdefault(event.account, Account())
        acct.count(event)
        self.mark(f"account:{event.account}")
        return []

    # -- the summary -----------------------------------------------------------------------

    def on_timer(self, key: str, tag: str, deadline: float, now: float) -> list[Alert]:
        self._now = now
        if key != SCHEDULE or tag != TAG or self.due is None or self.since is None:
            return []
        due, owned, counts = self.due, self.owned, self.accounts
        if owned is None and self.gather is not None:  # a replica not assigned its accounts yet
            self.arm(SCHEDULE, TAG, now + UNASSIGNED_WAIT)
            return []
        until = max(self.clock.epoch(now), due)
        done = Round(
            rule=self, since=self.since, until=until, due=due, late=self.late, counts=counts,
            owned=owned,
        )  # fmt: skip
        self.accounts = {name: acct.fresh() for name, acct in counts.items()}
        for name in self.accounts:
            self.mark(f"account:{name}")
        if owned is not None:  # a replica: the period closed stays in its accounts' rows
            self.closed = {n: c.closed(due) for n, c in counts.items() if n in owned}
        self.since = until
        self.due = self._next(until, due)
        self.late = False
        self._arm()
        if owned is None:
            return [self._summary(done, counts, now)]
        if self.watching and self.watching[0] not in owned:
            return []  # another replica decides this summary
        assert self.gather is not None
        self.gather(done)  # finished (``finish``) once the other owners' rows are read
        return []

    def finish(self, done: Round, shared: Sequence[StateRow], now: float) -> Alert:
        """The summary of ``done`` (a period this replica decides), with the counts of the
        accounts it does not own from their owners' rows in ``shared``."""
        counts = dict(done.counts)
        for row in shared:
            name = row.key.removeprefix("account:")
            if (row.rule, row.fingerprint) != (self.rule.name, self.rule.fingerprint):
                continue
            if name == row.key or not row.data or (done.owned and name in done.owned):
                continue
            theirs = period_counts(row.data, done.due)
            if theirs is None:
                log.warning("engine.summary_row_stale rule=%s account=%s", self.rule.name, name)
                continue
            if theirs.connection.state == "unknown" and name in counts:
                theirs.connection = counts[name].connection
            counts[name] = theirs
        return self._summary(done, counts, now)

    def _summary(self, done: Round, counts: Mapping[str, Account], now: float) -> Alert:
        report = DailyReport(
            rule=self.rule.name,
            since=at(done.since),
            until=at(done.until),
            late_from=at(done.due) if done.late else None,
            accounts=tuple(
                counts.get(n, Account()).day(n) for n in sorted({*self.watching, *counts})
            ),
            **self._read_facts(done.since, done.until),
        )
        log.info(
            "engine.summary rule=%s accounts=%d late=%s",
            self.rule.name, len(report.accounts), done.late,
        )  # fmt: skip
        return self._alert(report, cause=timer_identity(TAG, done.due), now=now)

    def take_over(self, shared: Mapping[str, Mapping[str, Any]], fresh: Iterable[str]) -> None:
        """Accounts taken over from another replica: their counts of this period from its
        rows in ``shared`` (by key), but for those seen here all along (``fresh``)."""
        for key, data in shared.items():
            name = key.removeprefix("account:")
            if name == key or name in fresh or (theirs := period_counts(data, self.due)) is None:
                continue
            theirs.connection = self.accounts.get(name, theirs).connection
            self.accounts[name] = theirs
            self.mark(key)

    def _read_facts(self, since: float, until: float) -> dict[str, Any]:
        if not isinstance(self.store, Database):  # none, or shared: see the module docstring
            return {}
        try:
            with closing(sqlite3.connect(self.store.path, timeout=READ_TIMEOUT)) as conn:
                deliveries, silences = _facts(conn, since, until)
        except Exception as exc:  # the summary goes out anyway, saying what it could not read
            log.warning(
                "engine.summary_facts_failed rule=%s error=%s: %s (messages and silences "
                "are left out)",
                self.rule.name,
                type(exc).__name__,
                exc,
            )
            return {}
        return {"deliveries": deliveries, "silences": tuple(silences)}

    def _alert(self, report: DailyReport, *, cause: str, now: float) -> Alert:
        title, body = daily_text(report, zone(self.rule.timezone))
        ctx = self.context(
            None, digest=body, since=report.since, until=report.until, late=report.late_from
        )
        ctx.update(key=self.rule.name, status="firing", now=self.clock.wall_at(now))
        return build_alert(
            self.rule,
            key=self.rule.name,
            status="firing",
            ctx=ctx,
            cause=cause,
            created=ctx["now"],
            default_title=title,
            default_text=body,
        )

    # -- persistence -----------------------------------------------------------------------

    def tracked_keys(self) -> int:
        return len(self.accounts)

    def state_keys(self) -> list[str]:
        return [SCHEDULE, *(f"account:{n}" for n in self.accounts)]

    def dump(self, key: str) -> dict[str, Any] | None:
        if key == SCHEDULE:
            return {"since": self.since, "due": self.due}
        name = key.removeprefix("account:")
        acct = self.accounts.get(name)
        if acct is None:
            return None
        data = {**acct.dump(), "fields": {"account": name}}
        if self.owned is not None:  # a replica: which period the counts are of, and the last
            data["due"] = self.due
            if name in self.closed:
                data["closed"] = self.closed[name]
        return data

    def load(self, key: str, data: Mapping[str, Any]) -> None:
        if key == SCHEDULE:
            since, due = data.get("since"), data.get("due")
            self.since = float(since) if isinstance(since, int | float) else None
            self.due = float(due) if isinstance(due, int | float) else None
        elif key.startswith("account:"):
            self.accounts[key.removeprefix("account:")] = Account.load(data)
            if isinstance(closed := data.get("closed"), dict):
                self.closed[key.removeprefix("account:")] = closed
