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
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Iterable, Mapping
from contextlib import closing
from datetime import UTC, datetime, time
from decimal import Decimal
from typing import Any

import attrs

from alertd.engine.alerts import build_alert, timer_identity
from alertd.engine.rule_types.base import RuleEvaluator
from alertd.engine.rule_types.schedule import next_due
from alertd.events import Alert, Event, OrderEvent, StreamGap
from alertd.messages.daily import (
    MAX_WINDOWS,
    AccountDay,
    BlindWindow,
    DailyReport,
    Deliveries,
    SilenceNote,
    daily_text,
)
from alertd.messages.formats import zone
from alertd.store.database import Database
from alertd.store.silences import list_silences
from alertd.store.sql import Connection, Store

log = logging.getLogger(__name__)

DEFAULT_EVERY = 86400.0
DEFAULT_AT = "08:00"
SCHEDULE = "~schedule"  # the state key of the schedule (account keys are "account:NAME")
TAG = "due"
READ_TIMEOUT = 1.0  # seconds the summary's read may wait for the database file (it is rare)


def _epoch(moment: datetime) -> float:
    return moment.timestamp()


def _at(moment: float) -> datetime:
    return datetime.fromtimestamp(moment, UTC)


@attrs.define
class _Connection:
    """An account's connection as its stream events last said (epoch seconds). Not saved:
    after a restart the connection is a new one; kept from one period to the next."""

    state: str = "unknown"
    since: float | None = None
    reason: str | None = None


@attrs.define
class _Account:
    """One account's period so far (epoch seconds for times)."""

    exchange: str | None = None
    fills: int = 0
    fill_notional: dict[str, Decimal] = attrs.field(factory=dict)
    cancels: int = 0
    cancel_notional: dict[str, Decimal] = attrs.field(factory=dict)
    disconnects: int = 0
    stale: int = 0
    errors: int = 0
    windows: list[tuple[float, float, str]] = attrs.field(factory=list)
    blind_count: int = 0
    blind_seconds: float = 0.0
    connection: _Connection = attrs.field(factory=_Connection)

    def fresh(self) -> _Account:
        """The next period's: counts start again, the connection's state stays."""
        return _Account(exchange=self.exchange, connection=self.connection)

    def dump(self) -> dict[str, Any]:
        data = attrs.asdict(self, filter=lambda a, _: a.name != "connection")
        for name in ("fill_notional", "cancel_notional"):
            data[name] = {c: str(v) for c, v in data[name].items()}
        data["windows"] = [list(w) for w in self.windows]
        return data

    @classmethod
    def load(cls, data: Mapping[str, Any]) -> _Account:
        out = cls()
        try:
            for name in ("fills", "cancels", "disconnects", "stale", "errors", "blind_count"):
                setattr(out, name, int(data.get(name, 0)))
            out.blind_seconds = float(data.get("blind_seconds", 0.0))
            out.exchange = data.get("exchange")
            for name in ("fill_notional", "cancel_notional"):
                setattr(out, name, {c: Decimal(v) for c, v in dict(data.get(name, {})).items()})
            out.windows = [(float(a), float(b), str(w)) for a, b, w in data.get("windows", [])]
        except (TypeError, ValueError, ArithmeticError):
            return cls()  # a damaged row is no state: the period starts afresh
        return out

    def day(self, name: str) -> AccountDay:
        c = self.connection
        return AccountDay(
            account=name,
            exchange=self.exchange,
            fills=self.fills,
            fill_notional=dict(self.fill_notional),
            cancels=self.cancels,
            cancel_notional=dict(self.cancel_notional),
            disconnects=self.disconnects,
            stale=self.stale,
            errors=self.errors,
            windows=tuple(
                BlindWindow(since=_at(a), until=_at(b), why=w) for a, b, w in self.windows
            ),
            blind_count=self.blind_count,
            blind_seconds=self.blind_seconds,
            state="up" if c.state == "up" else "down" if c.state == "down" else "unknown",
            state_since=None if c.since is None else _at(c.since),
            state_reason=c.reason,
        )


def _notional(event: OrderEvent) -> Decimal | None:
    """What a fill was worth (the exchange's notional where it says, else amount x price),
    or what a cancel took off the book (the remaining amount x price)."""
    if event.kind == "order.filled":
        if event.notional is not None:
            return event.notional
        amount = event.filled if event.filled is not None else event.amount
        price = event.fill_price if event.fill_price is not None else event.price
    else:
        amount = event.remaining if event.remaining is not None else event.amount
        price = event.price
    return None if amount is None or price is None else amount * price


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
        SilenceNote(rule=s.rule, matchers=dict(s.matchers), ends=_at(s.ends), comment=s.comment)
        for s in list_silences(conn, now=until)
        if s.active(until)
    ]
    return deliveries, silences


class SummaryRule(RuleEvaluator):
    store: Store | None = None  # the state database (evaluator_for sets it when there is one)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.accounts: dict[str, _Account] = {}
        self.watching: list[str] = []
        self.since: float | None = None  # epoch: the period's start
        self.due: float | None = None  # epoch: the next summary
        self.late = False  # the due time passed while alertd was down
        self._now = 0.0  # the last trio time the engine gave

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
            self.accounts.setdefault(name, _Account())

    # -- counting --------------------------------------------------------------------------

    def on_event(self, event: Event, ctx: dict[str, Any], now: float) -> list[Alert]:
        self._now = now
        acct = self.accounts.setdefault(event.account, _Account())
        acct.exchange = event.exchange
        kind = event.kind
        when = _epoch(event.time)
        if isinstance(event, OrderEvent):
            value = _notional(event)
            sums = acct.fill_notional if kind == "order.filled" else acct.cancel_notional
            if kind == "order.filled":
                acct.fills += 1
            else:
                acct.cancels += 1
            if value is not None:
                quote = event.symbol.rsplit("_", 1)[-1]  # BTC_USDT: USDT
                sums[quote] = sums.get(quote, Decimal(0)) + value
        elif isinstance(event, StreamGap):
            window = (_epoch(event.since), _epoch(event.until), event.why)
            # one window, reported by several streams, is one blind time
            if all(w[:2] != window[:2] for w in acct.windows):
                acct.windows = [*acct.windows, window][-MAX_WINDOWS:]
                acct.blind_count += 1
                acct.blind_seconds += max(0.0, window[1] - window[0])
        elif kind == "stream.connected":
            acct.connection = _Connection(state="up", since=when)
        elif kind == "stream.disconnected":
            acct.disconnects += 1
            c = acct.connection
            if c.state != "down":
                c.state, c.since = "down", when
            c.reason = getattr(event, "reason", None)
        elif kind == "stream.stale":
            acct.stale += 1
        elif kind == "stream.error":
            acct.errors += 1
        self.mark(f"account:{event.account}")
        return []

    # -- the summary -----------------------------------------------------------------------

    def on_timer(self, key: str, tag: str, deadline: float, now: float) -> list[Alert]:
        self._now = now
        if key != SCHEDULE or tag != TAG or self.due is None or self.since is None:
            return []
        due, late = self.due, self.late
        until = max(self.clock.epoch(now), due)
        report = DailyReport(
            rule=self.rule.name,
            since=_at(self.since),
            until=_at(until),
            late_from=_at(due) if late else None,
            accounts=tuple(
                self.accounts.get(n, _Account()).day(n)
                for n in sorted({*self.watching, *self.accounts})
            ),
            **self._read_facts(self.since, until),
        )
        alert = self._alert(report, cause=timer_identity(TAG, due), now=now)
        self.accounts = {name: acct.fresh() for name, acct in self.accounts.items()}
        for name in self.accounts:
            self.mark(f"account:{name}")
        self.since = until
        self.due = self._next(until, due)
        self.late = False
        self._arm()
        log.info(
            "engine.summary rule=%s accounts=%d late=%s", self.rule.name, len(report.accounts), late
        )
        return [alert]

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
        return None if acct is None else {**acct.dump(), "fields": {"account": name}}

    def load(self, key: str, data: Mapping[str, Any]) -> None:
        if key == SCHEDULE:
            since, due = data.get("since"), data.get("due")
            self.since = float(since) if isinstance(since, int | float) else None
            self.due = float(due) if isinstance(due, int | float) else None
        elif key.startswith("account:"):
            self.accounts[key.removeprefix("account:")] = _Account.load(data)
