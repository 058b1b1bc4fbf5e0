"""A summary's counts of one account over one period (rule_types/summary): what is counted
from its events, how a count is saved in its ``rule_state`` row and read back, and what it
says in the digest (``messages.daily.AccountDay``)."""

from __future__ import annotations

from collections.abc import Mapping
from contextlib import suppress
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import attrs

from alertd.events import Event, OrderEvent, StreamGap
from alertd.messages.daily import MAX_WINDOWS, AccountDay, BlindWindow


def epoch(moment: datetime) -> float:
    return moment.timestamp()


def at(moment: float) -> datetime:
    return datetime.fromtimestamp(moment, UTC)


@attrs.define
class Connection:
    """An account's connection as its stream events last said (epoch seconds). Not saved:
    after a restart the connection is a new one; kept from one period to the next."""

    state: str = "unknown"
    since: float | None = None
    reason: str | None = None


@attrs.define
class Account:
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
    connection: Connection = attrs.field(factory=Connection)

    def fresh(self) -> Account:
        """The next period's: counts start again, the connection's state stays."""
        return Account(exchange=self.exchange, connection=self.connection)

    def dump(self) -> dict[str, Any]:
        data = attrs.asdict(self, filter=lambda a, _: a.name != "connection")
        for name in ("fill_notional", "cancel_notional"):
            data[name] = {c: str(v) for c, v in data[name].items()}
        data["windows"] = [list(w) for w in self.windows]
        return data

    @classmethod
    def load(cls, data: Mapping[str, Any]) -> Account:
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

    def closed(self, due: float) -> dict[str, Any]:
        """This period's counts as a replica leaves them in its row for the one that makes
        the summary due at ``due`` (``period_counts``), with the connection now."""
        return {**self.dump(), "due": due, "connection": attrs.asdict(self.connection)}

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
            windows=tuple(BlindWindow(since=at(a), until=at(b), why=w) for a, b, w in self.windows),
            blind_count=self.blind_count,
            blind_seconds=self.blind_seconds,
            state="up" if c.state == "up" else "down" if c.state == "down" else "unknown",
            state_since=None if c.since is None else at(c.since),
            state_reason=c.reason,
        )

    def count(self, event: Event) -> None:
        """Count ``event`` of this account into the period."""
        self.exchange = event.exchange
        kind = event.kind
        when = epoch(event.time)
        if isinstance(event, OrderEvent):
            value = notional(event)
            sums = self.fill_notional if kind == "order.filled" else self.cancel_notional
            if kind == "order.filled":
                self.fills += 1
            else:
                self.cancels += 1
            if value is not None:
                quote = event.symbol.rsplit("_", 1)[-1]  # BTC_USDT: USDT
                sums[quote] = sums.get(quote, Decimal(0)) + value
        elif isinstance(event, StreamGap):
            window = (epoch(event.since), epoch(event.until), event.why)
            # one window, reported by several streams, is one blind time
            if all(w[:2] != window[:2] for w in self.windows):
                self.windows = [*self.windows, window][-MAX_WINDOWS:]
                self.blind_count += 1
                self.blind_seconds += max(0.0, window[1] - window[0])
        elif kind == "stream.connected":
            self.connection = Connection(state="up", since=when)
        elif kind == "stream.disconnected":
            self.disconnects += 1
            c = self.connection
            if c.state != "down":
                c.state, c.since = "down", when
            c.reason = getattr(event, "reason", None)
        elif kind == "stream.stale":
            self.stale += 1
        elif kind == "stream.error":
            self.errors += 1


def period_counts(data: Mapping[str, Any], due: float | None) -> Account | None:
    """The counts of the period that ends at ``due`` in an account's row saved by its owner
    (a replica, rule_types/summary): those it closed at ``due``, else those it is still
    counting if they are of that period (it has not come to ``due`` yet, or saved since);
    None if the row holds another period only."""
    closed = data.get("closed")
    if isinstance(closed, Mapping) and _same(closed.get("due"), due):
        out = Account.load(closed)
        connection = closed.get("connection")
        if isinstance(connection, Mapping):
            with suppress(TypeError):  # a damaged connection is an unknown one
                out.connection = Connection(**connection)
        return out
    counting = data.get("due")
    return Account.load(data) if counting is None or _same(counting, due) else None


def _same(a: Any, b: float | None) -> bool:
    """Whether two due times are one (replicas compute them alike; a float survives JSON)."""
    return isinstance(a, int | float) and b is not None and abs(a - b) < 1.0


def notional(event: OrderEvent) -> Decimal | None:
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
