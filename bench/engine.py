"""Rules engine throughput: events per second with 10, 100 and 1,000 rules loaded.

    .venv/bin/python bench/engine.py [--quick] [--profile]

Rules are spread over 50 accounts, 10 symbols and every rule type, with ``where``
expressions; events come from 5 of those accounts, so most rules never match an event (as in
a real config, where each rule is about one account, symbol or kind). The engine runs
synchronously on one core with a synthetic clock (1 ms per event); alerts are counted, not
sent. Target: >= 50,000 events/s at 1,000 rules.
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from alertd.config.model import RuleSettings
from alertd.engine import Engine, compile_rules
from alertd.events import (
    BalanceChanged,
    Book,
    Event,
    FundsInsufficient,
    OrderFilled,
    OrderPartiallyFilled,
    OrderPlaced,
    StreamStale,
    Trade,
)

ACCOUNTS = [f"acct{i:02d}" for i in range(50)]
ACTIVE = ACCOUNTS[:5]  # accounts that send events
SYMBOLS = [f"C{i}_USDT" for i in range(10)]
CURRENCIES = ["USDT", "BTC", "ETH", "SOL"]
T0 = datetime(2026, 1, 1, tzinfo=UTC)


def make_rules(n: int, rng: random.Random) -> list[RuleSettings]:
    rules: list[RuleSettings] = []
    for i in range(n):
        account = ACCOUNTS[i % len(ACCOUNTS)]
        symbol = SYMBOLS[(i // 7) % len(SYMBOLS)]
        name = f"r{i}"
        choice = i % 10
        if choice in (0, 1):
            rules.append(
                RuleSettings(
                    name=name,
                    on="order.filled",
                    account=account,
                    where=f"notional > {rng.randint(100, 5000)} and side == 'buy'",
                    message="{{ side }} {{ amount }} {{ symbol }} at {{ fill_price }}",
                )
            )
        elif choice == 2:
            rules.append(
                RuleSettings(
                    name=name,
                    on="trade",
                    symbol=symbol,
                    account=account,
                    where=f"price > {rng.randint(90, 110)}.5",
                )
            )
        elif choice in (3, 4):
            rules.append(
                RuleSettings(
                    name=name,
                    type="threshold",
                    on="balance.changed",
                    account=account,
                    currency=CURRENCIES[i % len(CURRENCIES)],
                    value="balance",
                    below=Decimal(rng.randint(10, 500)),
                    resolve_above=Decimal(600),
                )
            )
        elif choice == 5:
            rules.append(
                RuleSettings(
                    name=name,
                    type="rate",
                    on="funds.insufficient",
                    account=account,
                    count=3,
                    within=600.0,  # type: ignore[arg-type]
                )
            )
        elif choice == 6:
            rules.append(
                RuleSettings(
                    name=name,
                    type="absence",
                    on="trade",
                    account=account,
                    symbol=symbol,
                    after=300.0,  # type: ignore[arg-type]
                )
            )
        elif choice == 7:
            rules.append(
                RuleSettings(
                    name=name,
                    type="order_timeout",
                    account=account,
                    open_for=3600.0,  # type: ignore[arg-type]
                    stalled_for=600.0,  # type: ignore[arg-type]
                )
            )
        elif choice == 8:
            rules.append(
                RuleSettings(
                    name=name,
                    on="book",
                    account=account,
                    symbol=symbol,
                    where="spread is not none and spread > 5",
                )
            )
        else:
            rules.append(
                RuleSettings(
                    name=name,
                    on="order.*",
                    account=account,
                    symbol=symbol,
                    side="sell",
                    where="amount > 2",
                )
            )
    return rules


def make_events(n: int, rng: random.Random) -> list[Event]:
    events: list[Event] = []
    open_orders: list[tuple[str, str, str]] = []
    for i in range(n):
        account = rng.choice(ACTIVE)
        when = T0 + timedelta(milliseconds=i)
        common = {"exchange": "piexgo", "account": account, "time": when, "received": when}
        symbol = rng.choice(SYMBOLS)
        roll = rng.random()
        price = Decimal(rng.randint(9000, 11000)) / 100
        amount = Decimal(rng.randint(1, 500)) / 100
        if roll < 0.40:
            events.append(Trade(**common, symbol=symbol, price=price, amount=amount, side="buy"))
        elif roll < 0.60:
            bid, ask = price, price + Decimal("0.5")
            events.append(
                Book(
                    **common,
                    symbol=symbol,
                    bids=((bid, amount),),
                    asks=((ask, amount),),
                    best_bid=bid,
                    best_ask=ask,
                    spread=ask - bid,
                )
            )
        elif roll < 0.80:
            side = rng.choice(["buy", "sell"])
            order = dict(common, symbol=symbol, side=side, price=price, amount=amount)
            if open_orders and rng.random() < 0.6:
                oid, acct, sym = open_orders.pop(rng.randrange(len(open_orders)))
                order.update(account=acct, symbol=sym)
                if rng.random() < 0.5:
                    events.append(
                        OrderFilled(
                            **order,  # type: ignore[arg-type]
                            order_id=oid,
                            remaining=Decimal(0),
                            filled=amount,
                            fill_price=price,
                            notional=price * amount,
                        )
                    )
                else:
                    half = amount / 2
                    events.append(
                        OrderPartiallyFilled(
                            **order,  # type: ignore[arg-type]
                            order_id=oid,
                            remaining=amount - half,
                            filled=half,
                            last_filled=half,
                        )
                    )
                    open_orders.append((oid, acct, sym))
            else:
                oid = str(i)
                open_orders.append((oid, account, symbol))
                events.append(
                    OrderPlaced(**order, order_id=oid, remaining=amount)  # type: ignore[arg-type]
                )
        elif roll < 0.95:
            events.append(
                BalanceChanged(
                    **common,
                    currency=rng.choice(CURRENCIES),
                    balance=Decimal(rng.randint(0, 1000)),
                )
            )
        elif roll < 0.99:
            events.append(FundsInsufficient(**common, order_id=str(i), currency="USDT"))
        else:
            events.append(StreamStale(**common, stream="pinfo", silent_for=61.0))
    return events


def run(n_rules: int, events: list[Event]) -> tuple[float, int]:
    rng = random.Random(n_rules)
    compiled = compile_rules(make_rules(n_rules, rng), timezone="UTC")
    engine = Engine(compiled, wall=lambda: T0, accounts=ACCOUNTS)
    engine.start(0.0)
    alerts = 0
    started = time.perf_counter()
    now = 0.0
    for event in events:
        now += 0.001
        alerts += len(engine.process(event, now))
    alerts += len(engine.advance(now))
    return time.perf_counter() - started, alerts


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="20,000 events instead of 200,000")
    parser.add_argument("--profile", action="store_true", help="pyinstrument the 1,000-rule run")
    args = parser.parse_args()
    n_events = 20_000 if args.quick else 200_000
    events = make_events(n_events, random.Random(1))
    print(f"machine: nproc={os.cpu_count()} cpu={cpu_model()!r} python={platform.python_version()}")
    print(f"{'rules':>6} {'events':>8} {'seconds':>8} {'events/s':>10} {'alerts':>7}")
    for n_rules in (10, 100, 1000):
        if args.profile and n_rules == 1000:
            from pyinstrument import Profiler

            with Profiler() as profiler:
                seconds, alerts = run(n_rules, events)
            profiler.print()
        else:
            seconds, alerts = run(n_rules, events)
        rate = len(events) / seconds
        print(f"{n_rules:>6} {len(events):>8} {seconds:>8.2f} {rate:>10,.0f} {alerts:>7}")


if __name__ == "__main__":
    main()
