"""The alert script a user would write instead of alertd: asyncio ``websockets``, ``json``,
ten if-rules, and a notifier in a thread. A contender in ``bench/e2e.py``.

    .venv/bin/python bench/asyncio_script.py --url ws://127.0.0.1:PORT/piexgo/ws [--receive-only]

The ten rules are the ten of ``common.bench_rules`` that are about the flooded account
(r000-r009), written the way a script would: floats, a dict of open orders, a deque of
cancel times, cooldowns in a dict, a watchdog task once a second for the absence and order
timeout rules. Notifications go through a ``queue.Queue`` to one thread, where a real script
would call an HTTP API; here that thread only counts them. ``--receive-only`` is the bare
asyncio client: subscribe and receive, nothing else.

Benchmark hooks (``common.ChildReport``): CPU time on request, and the ``end`` line when the
server closes the connection (the end of the flood). The library's defaults are kept
(compression offered, which the replay declines; pings every 20 s), as a user would.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import queue
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

import websockets

TOPICS = ("pinfo", "dealinfo.btc_usdt", "dealinfo.eth_usdt")
PLACED, FILLED, CANCELLED = 0, 2, 4  # Piexgo order status (0 also while partly filled)


class Notifier:
    """One thread that sends what the rules raise, so a slow API never blocks the reader."""

    def __init__(self, send: Callable[[str], None]) -> None:
        self._queue: queue.Queue[str | None] = queue.Queue()
        self._send = send
        self._thread = threading.Thread(target=self._run, name="notifier", daemon=True)
        self._thread.start()

    def alert(self, text: str) -> None:
        self._queue.put(text)

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join(timeout=10)

    def _run(self) -> None:
        while (text := self._queue.get()) is not None:
            try:
                self._send(text)
            except Exception as e:  # a failed notification must not kill the script
                print(f"notify failed: {e}", file=sys.stderr)


class Rules:
    """The ten rules, with the little state they need."""

    def __init__(self, notifier: Notifier) -> None:
        self.notify = notifier.alert
        self.cooldown_until: dict[str, float] = {}
        self.low_usdt = False
        self.high_btc = False
        self.cancels: deque[float] = deque()
        self.open_orders: dict[str, list[float]] = {}  # id -> [placed at, last progress at]
        self.last_trade = {"BTC_USDT": time.monotonic()}
        self.absent = False

    def on_message(self, msg: dict[str, Any]) -> None:
        topic = msg.get("topic")
        if "op" in msg:  # the answer to a subscribe
            return
        if topic == "pinfo":
            data = msg["data"]
            if msg["type"] == "order":
                self.on_order(data)
            elif msg["type"] == "balance":
                self.on_balance(data["token"], float(data["value"]))
        elif topic == "dealinfo":
            self.on_trades(msg["symbol"].upper(), msg["deals"])

    def on_order(self, d: dict[str, Any]) -> None:
        now = time.monotonic()
        status, market, oid = d["status"], d["market"], d["order_id"]
        volume, remain = float(d["volume"]), float(d["remain"])
        if status == FILLED:
            self.open_orders.pop(oid, None)
            notional = float(d["amount"])
            if market == "BTC_USDT" and notional > 40_000:  # r000
                self.notify(f"filled {d['type']} {volume} {market} at {d['price']}")
            if market == "ETH_USDT" and notional > 41_000:  # r001
                self.notify(f"filled {d['type']} {volume} {market} at {d['price']}")
        elif status == CANCELLED:
            self.open_orders.pop(oid, None)
            self.cancels.append(now)  # r005: 500 cancels within a minute, then 5 min quiet
            while self.cancels and self.cancels[0] < now - 60:
                self.cancels.popleft()
            if len(self.cancels) >= 500 and self.cooled("cancels", now, 300):
                self.notify(f"{len(self.cancels)} orders cancelled in a minute")
        elif remain < volume:  # partly filled
            self.open_orders.setdefault(oid, [now, now])[1] = now
            filled = volume - remain
            if d["type"] == "buy" and filled * float(d["price"]) > 48_000 * 2:  # r008
                self.notify(f"big partial fill {oid}: {filled} {market}")
        else:  # placed
            self.open_orders[oid] = [now, now]
            if market == "ETH_USDT" and volume * float(d["order_price"]) > 49_000 * 3:  # r009
                self.notify(f"big order placed {oid}: {volume} {market}")

    def on_balance(self, token: str, value: float) -> None:
        if token == "USDT":  # r003: below 1,003, cleared above 5,003
            if value < 1_003 and not self.low_usdt:
                self.low_usdt = True
                self.notify(f"USDT balance low: {value}")
            elif value > 5_003 and self.low_usdt:
                self.low_usdt = False
                self.notify(f"USDT balance back: {value}")
        elif token == "BTC":  # r004
            if value > 1_000_004 and not self.high_btc:
                self.high_btc = True
                self.notify(f"BTC balance high: {value}")
            elif value <= 1_000_004:
                self.high_btc = False

    def on_trades(self, symbol: str, deals: list[dict[str, Any]]) -> None:
        now = time.monotonic()
        if symbol == "BTC_USDT":
            self.last_trade[symbol] = now
            self.absent = False
            for deal in deals:  # r002: a big trade, at most one alert in 10 s
                size = float(deal["vol"]) * float(deal["price"])
                if size > 42_000 * 4 and self.cooled(symbol, now, 10):
                    self.notify(f"big trade {symbol}: {size:.0f} USDT")

    def cooled(self, key: str, now: float, seconds: float) -> bool:
        if now < self.cooldown_until.get(key, 0.0):
            return False
        self.cooldown_until[key] = now + seconds
        return True

    async def watchdog(self) -> None:
        while True:
            await asyncio.sleep(1)
            now = time.monotonic()
            if now - self.last_trade["BTC_USDT"] > 300 and not self.absent:  # r006
                self.absent = True
                self.notify("no BTC_USDT trade for 5 minutes")
            for oid, (placed, progress) in list(self.open_orders.items()):  # r007
                if now - placed > 9 * 3600 or now - progress > 3600:
                    del self.open_orders[oid]
                    self.notify(f"order {oid} open too long")


async def watch(url: str, notifier: Notifier, on_close: Callable[[], None]) -> None:
    rules = Rules(notifier)
    watchdog = asyncio.create_task(rules.watchdog())
    try:
        async with websockets.connect(url) as ws:
            for topic in TOPICS:
                await ws.send(json.dumps({"op": "subscribe", "topic": topic}))
            async for raw in ws:
                rules.on_message(json.loads(raw))
        on_close()
        notifier.alert("disconnected")
    finally:
        watchdog.cancel()


async def receive_only(url: str, on_close: Callable[[int], None]) -> None:
    received = 0
    async with websockets.connect(url) as ws:
        for topic in TOPICS:
            await ws.send(json.dumps({"op": "subscribe", "topic": topic}))
        async for _ in ws:
            received += 1
    on_close(received)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True)
    parser.add_argument("--receive-only", action="store_true", help="the bare asyncio client")
    args = parser.parse_args()
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from common import ChildReport

    report = ChildReport()
    if args.receive_only:
        asyncio.run(receive_only(args.url, lambda n: report.end(received=n)))
        return 0
    sent = 0

    def send(text: str) -> None:  # where a real script would post to its chat service
        nonlocal sent
        sent += 1

    notifier = Notifier(send)
    asyncio.run(watch(args.url, notifier, report.end))
    notifier.close()
    report.say("notified", sent)
    return 0


if __name__ == "__main__":
    sys.exit(main())
