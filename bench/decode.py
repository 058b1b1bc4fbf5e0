"""Frames per second that each decoder turns into events, per message kind, on one core.

    .venv/bin/python bench/decode.py            # 100,000 frames per kind, best of 3
    .venv/bin/python bench/decode.py --quick    # 10,000 frames per kind, best of 1
    .venv/bin/python bench/decode.py --profile piexgo/order   # pyinstrument on one kind

Order frames walk real lifecycles (placed, partly filled, filled) with a new order id every
three frames, so the order tracker does its real work, including its bounded memory of closed
orders. Balance frames move each of five currencies every time, so every frame is an event.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

from alertd.protocols import Decoder, decoder_for

TARGET = 100_000  # order/balance frames per second that decoding must sustain
RECEIVED = datetime(2024, 5, 1, tzinfo=UTC)
TOKENS = ("BTC", "ETH", "USDT", "LTC", "XRP")


def piexgo_orders(n: int) -> Iterator[str]:
    for i in range(n):
        order_id, step = divmod(i, 3)
        status, remain, amount, price = [
            (0, "1.00000000", "0.00000000", "0"),
            (0, "0.40000000", "4698.84000000", "7831.40"),
            (2, "0.00000000", "7828.07520000", "7828.08"),
        ][step]
        yield json.dumps(
            {
                "topic": "pinfo",
                "type": "order",
                "data": {
                    "order_price": "7831.1600000000",
                    "price": price,
                    "stop": "0.0000000000",
                    "market_price": "0.0000000000",
                    "volume": "1.00000000",
                    "remain": remain,
                    "amount": amount,
                    "type": "buy" if order_id % 2 else "sell",
                    "timestamp": 1559734776 + i,
                    "order_id": str(1136203593297424385 + order_id),
                    "market": "BTC_USDT",
                    "status": status,
                    "flag": 0,
                    "id": 1559734776923657000 + i,
                },
            }
        )


def piexgo_balances(n: int) -> Iterator[str]:
    for i in range(n):
        yield json.dumps(
            {
                "topic": "pinfo",
                "type": "balance",
                "data": {
                    "token": TOKENS[i % len(TOKENS)],
                    "type": "balance",
                    "value": f"{10000991076 + i}.10471725",
                    "id": 10897125 + i,
                },
            }
        )


def piexgo_deals(n: int) -> Iterator[str]:
    deal = {"time": 1553326491272, "direct": 0, "price": "4003.9000000000", "vol": "0.0151"}
    for i in range(n):
        deals = [{**deal, "time": deal["time"] + i}, {**deal, "direct": 1}]
        yield json.dumps({"topic": "dealinfo", "symbol": "btc_usdt", "deals": deals})


def piexgo_depth(n: int) -> Iterator[str]:
    for i in range(n):
        bids = [{"index": k, "price": 3990.67 - k * 0.11, "qty": 0.21 + k} for k in range(5)]
        asks = [{"index": k, "price": 3990.69 + k * 0.13, "qty": 0.07 + k} for k in range(5)]
        yield json.dumps(
            {
                "topic": "depth",
                "symbol": "btc_usdt",
                "buy_book": bids,
                "sell_book": asks,
                "change_id": 36296 + i,
            }
        )


def cryptology_orders(n: int) -> Iterator[str]:
    for i in range(n):
        order_id, step = divmod(i, 3)
        side = "Buy" if order_id % 2 else "Sell"
        base = {
            "order_id": order_id,
            "time": [946684800 + i, i % 1_000_000],
            "trade_pair": "BTC_USD",
            "client_order_id": order_id + 7,
        }
        if step == 0:
            msg = {
                "@type": f"{side}OrderPlaced",
                "amount": "1.5",
                "closed_inline": False,
                "price": "20000.5",
                **base,
            }
        elif step == 1:
            msg = {"@type": f"{side}OrderAmountChanged", "amount": "0.5", **base}
        else:
            msg = {"@type": f"{side}OrderClosed", **base}
        yield json.dumps(msg)


def cryptology_balances(n: int) -> Iterator[str]:
    for i in range(n):
        yield json.dumps(
            {
                "@type": "SetBalance",
                "balance": f"{1000 + i}.25",
                "change": "1",
                "currency": TOKENS[i % len(TOKENS)],
                "reason": "trade",
                "time": [946684800 + i, 0],
            }
        )


def cryptology_funds(n: int) -> Iterator[str]:
    for i in range(n):
        yield json.dumps({"@type": "InsufficientFunds", "order_id": i, "currency": "USD"})


def cryptology_trades(n: int) -> Iterator[str]:
    for i in range(n):
        yield json.dumps(
            {
                "@type": "AnonymousTrade",
                "amount": "0.25",
                "maker_buy": bool(i % 2),
                "price": "20000.5",
                "time": [946684800 + i, 0],
                "trade_pair": "BTC_USD",
            }
        )


def cryptology_books(n: int) -> Iterator[str]:
    for _ in range(n):
        bids = {f"{20000 - k}.5": f"{k + 1}.25" for k in range(5)}
        asks = {f"{20001 + k}.5": f"{k + 1}.75" for k in range(5)}
        yield json.dumps(
            {"@type": "OrderBookAgg", "buy_levels": bids, "sell_levels": asks, "trade_pair": "X_Y"}
        )


KINDS: dict[str, tuple[str, Callable[[int], Iterator[str]]]] = {
    "piexgo/order": ("piexgo", piexgo_orders),
    "piexgo/balance": ("piexgo", piexgo_balances),
    "piexgo/dealinfo (2 deals)": ("piexgo", piexgo_deals),
    "piexgo/depth (5+5 levels)": ("piexgo", piexgo_depth),
    "cryptology/order": ("cryptology", cryptology_orders),
    "cryptology/SetBalance": ("cryptology", cryptology_balances),
    "cryptology/InsufficientFunds": ("cryptology", cryptology_funds),
    "cryptology/AnonymousTrade": ("cryptology", cryptology_trades),
    "cryptology/OrderBookAgg (5+5)": ("cryptology", cryptology_books),
}


def run_once(exchange: str, frames: list[str]) -> tuple[float, int]:
    decoder: Decoder = decoder_for(exchange, "bench")
    decode = decoder.decode
    events = 0
    start = time.perf_counter()
    for frame in frames:
        events += len(decode(frame, RECEIVED))
    return time.perf_counter() - start, events


def machine() -> str:
    cpu = "unknown CPU"
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    import os

    return (
        f"{os.cpu_count()} CPUs ({cpu}), Python {platform.python_version()} "
        f"({platform.python_implementation()}), {platform.system()} {platform.machine()}"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--quick", action="store_true", help="10,000 frames a kind, one run")
    parser.add_argument("--frames", type=int, help="frames per kind (default 100,000)")
    parser.add_argument("--profile", metavar="KIND", help="profile one kind with pyinstrument")
    args = parser.parse_args()
    n = args.frames or (10_000 if args.quick else 100_000)
    repeats = 1 if args.quick else 3

    if args.profile:
        from pyinstrument import Profiler

        exchange, make = KINDS[args.profile]
        frames = list(make(n))
        with Profiler() as profiler:
            run_once(exchange, frames)
        profiler.print()
        return 0

    print(f"decode benchmark: {machine()}")
    print(f"{n:,} frames per kind, best of {repeats}, one core\n")
    print(f"{'kind':32} {'frames/s':>10} {'us/frame':>9} {'events/s':>10}")
    slow = []
    for name, (exchange, make) in KINDS.items():
        frames = list(make(n))
        elapsed, events = min(run_once(exchange, frames) for _ in range(repeats))
        rate = n / elapsed
        print(f"{name:32} {rate:>10,.0f} {elapsed / n * 1e6:>9.2f} {events / elapsed:>10,.0f}")
        if ("order" in name or "alance" in name) and rate < TARGET:
            slow.append(name)
    if slow:
        print(f"\nbelow the {TARGET:,}/s target: {', '.join(slow)}")
        return 1
    print(f"\nall order and balance kinds at or above {TARGET:,} frames/s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
