"""Small builders for events, rules and engines used across the engine tests."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from alertd.config.model import RuleSettings
from alertd.engine import Engine, RuleStateStore, compile_rules
from alertd.events import (
    BalanceChanged,
    FundsInsufficient,
    OrderCancelled,
    OrderFilled,
    OrderPartiallyFilled,
    OrderPlaced,
    StreamDisconnected,
    Trade,
)
from alertd.store.database import Database, db_path

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


class FakeWall:
    """A wall clock that follows the engine's monotonic clock from T0."""

    def __init__(self, start: datetime = T0) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def at(self, seconds: float) -> datetime:
        return T0 + timedelta(seconds=seconds)


def D(x: Any) -> Decimal:
    return Decimal(str(x))


def rule(name: str = "r", **kw: Any) -> RuleSettings:
    return RuleSettings(name=name, **kw)


def engine(
    *rules: RuleSettings,
    accounts: tuple[str, ...] = ("main",),
    state: RuleStateStore | None = None,
    wall: Callable[[], datetime] | None = None,
    timezone: str = "UTC",
) -> Engine:
    compiled = compile_rules(list(rules), timezone=timezone)
    return Engine(compiled, state=state, wall=wall or FakeWall(), accounts=accounts)


def _common(account: str, t: float = 0.0) -> dict[str, Any]:
    when = T0 + timedelta(seconds=t)
    return {"exchange": "piexgo", "account": account, "time": when, "received": when}


def balance(
    value: Any, *, currency: str = "USDT", account: str = "main", t: float = 0.0, change: Any = None
) -> BalanceChanged:
    return BalanceChanged(
        **_common(account, t),
        currency=currency,
        balance=D(value),
        change=None if change is None else D(change),
    )


def filled(
    order_id: str = "1",
    *,
    account: str = "main",
    symbol: str = "BTC_USDT",
    side: str = "buy",
    price: Any = "4003.9",
    amount: Any = "0.5",
    t: float = 0.0,
) -> OrderFilled:
    p, a = D(price), D(amount)
    return OrderFilled(
        **_common(account, t),
        order_id=order_id,
        symbol=symbol,
        side=side,  # type: ignore[arg-type]
        price=p,
        amount=a,
        remaining=D(0),
        filled=a,
        fill_price=p,
        notional=p * a,
    )


def placed(
    order_id: str = "1",
    *,
    account: str = "main",
    symbol: str = "BTC_USDT",
    side: str = "buy",
    amount: Any = "1",
    t: float = 0.0,
) -> OrderPlaced:
    return OrderPlaced(
        **_common(account, t),
        order_id=order_id,
        symbol=symbol,
        side=side,  # type: ignore[arg-type]
        price=D(100),
        amount=D(amount),
        remaining=D(amount),
        filled=D(0),
    )


def partial(
    order_id: str = "1", *, filled_: Any, account: str = "main", amount: Any = "1", t: float = 0.0
) -> OrderPartiallyFilled:
    return OrderPartiallyFilled(
        **_common(account, t),
        order_id=order_id,
        symbol="BTC_USDT",
        side="buy",
        price=D(100),
        amount=D(amount),
        remaining=D(amount) - D(filled_),
        filled=D(filled_),
    )


def cancelled(order_id: str = "1", *, account: str = "main", t: float = 0.0) -> OrderCancelled:
    return OrderCancelled(
        **_common(account, t), order_id=order_id, symbol="BTC_USDT", side="buy", price=D(100)
    )


def insufficient(
    *, account: str = "main", order_id: str = "9", t: float = 0.0, currency: str = "USDT"
) -> FundsInsufficient:
    return FundsInsufficient(**_common(account, t), order_id=order_id, currency=currency)


def trade(
    *, symbol: str = "BTC_USDT", account: str = "main", price: Any = "100", t: float = 0.0
) -> Trade:
    return Trade(**_common(account, t), symbol=symbol, price=D(price), amount=D(1), side="buy")


def disconnected(*, account: str = "main", t: float = 0.0) -> StreamDisconnected:
    return StreamDisconnected(**_common(account, t), stream="pinfo", reason="closed 1006")


# Real SQLite state databases a test opened; tests/engine/conftest.py closes them after it.
_open: list[Database] = []


def database(path: Path) -> Database:
    """A real state database in the directory ``path``, closed after the test."""
    db = Database(db_path(path))
    _open.append(db)
    return db


def store_at(path: Path) -> RuleStateStore:
    """The rule-state store of a real state database in ``path``, closed after the test."""
    return RuleStateStore(database(path))


def close_databases() -> None:
    while _open:
        _open.pop().close()
