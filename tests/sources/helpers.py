"""Helpers for the sources tests: a tiny Piexgo-speaking websocket server, frames, settings
and an event collector."""

from __future__ import annotations

import json
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import attrs
import trio
import trio_websocket

from alertd.config.model import AccountSettings, AuthSettings, Duration
from alertd.events import Event


@attrs.define(eq=False)
class FakePiexgo:
    """Acks subscribes, sends a balance snapshot after ``pinfo``, answers logins, and lets a
    test send frames to or drop the current connections."""

    balances: dict[str, str] = attrs.field(factory=lambda: {"BTC": "1.5", "USDT": "1000"})
    reject_login: bool = False
    answer_login: bool = True
    send_snapshot: bool = True
    subscriptions: list[list[str]] = attrs.field(factory=list)  # per connection, in order
    logins: list[dict[str, Any]] = attrs.field(factory=list)
    headers: list[dict[str, str]] = attrs.field(factory=list)
    connections: list[trio_websocket.WebSocketConnection] = attrs.field(factory=list)
    port: int = 0
    _changed: trio.Event = attrs.field(factory=trio.Event)

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/piexgo/ws"

    def _notify(self) -> None:
        self._changed.set()
        self._changed = trio.Event()

    async def wait(self, predicate: Callable[[], bool]) -> None:
        while not predicate():
            await self._changed.wait()

    def subscribed(self, topics: list[str]) -> bool:
        """The latest connection has subscribed exactly ``topics``, in order."""
        return bool(self.subscriptions) and self.subscriptions[-1] == topics

    async def handler(self, request: trio_websocket.WebSocketRequest) -> None:
        self.headers.append({k.decode(): v.decode() for k, v in request.headers})
        ws = await request.accept()
        topics: list[str] = []
        self.subscriptions.append(topics)
        self.connections.append(ws)
        self._notify()
        try:
            while True:
                obj = json.loads(await ws.get_message())
                if obj.get("op") == "login":
                    self.logins.append(obj)
                    self._notify()
                    if not self.answer_login:
                        continue
                    if self.reject_login:
                        await ws.send_message('{"op":"login","status":"error","msg":"bad key"}')
                        await ws.aclose(1008)
                        return
                    await ws.send_message('{"op":"login","status":"ok"}')
                    continue
                topic = obj["topic"]
                await ws.send_message(
                    json.dumps({"op": "subscribe", "topic": topic, "status": "ok"})
                )
                if topic == "pinfo" and self.send_snapshot:
                    for token, value in self.balances.items():
                        await ws.send_message(balance_frame(token, value))
                topics.append(topic)
                self._notify()
        except trio_websocket.ConnectionClosed:
            pass
        finally:
            self._notify()

    async def send(self, frame: str) -> None:
        await self.connections[-1].send_message(frame)

    async def drop(self, code: int = 1011) -> None:
        """Close every connection open now (not those made while closing these)."""
        for ws in list(self.connections):
            await ws.aclose(code)


def balance_frame(token: str, value: str) -> str:
    return json.dumps(
        {
            "topic": "pinfo",
            "type": "balance",
            "data": {"token": token, "type": "balance", "value": value, "id": 1},
        }
    )


def deal_frame(price: str = "4003.9", symbol: str = "btc_usdt") -> str:
    deal = {"time": 1553326491272, "direct": 0, "price": price, "vol": "0.0151"}
    return json.dumps({"topic": "dealinfo", "symbol": symbol, "deals": [deal]})


def depth_frame(bid: float, change_id: int, symbol: str = "btc_usdt") -> str:
    return json.dumps(
        {
            "topic": "depth",
            "symbol": symbol,
            "buy_book": [{"index": 0, "price": bid, "qty": 0.2}],
            "sell_book": [{"index": 0, "price": bid + 1, "qty": 0.1}],
            "change_id": change_id,
        }
    )


def account(url: str, **kw: Any) -> AccountSettings:
    """Settings with short timings, so real-time tests take well under a second each."""
    base: dict[str, Any] = {
        "name": "main",
        "exchange": "piexgo",
        "url": url,
        "streams": ["pinfo", "dealinfo.btc_usdt", "depth.btc_usdt"],
        "connect_timeout": Duration(2.0),
        "ping_interval": Duration(0.2),
        "ping_timeout": Duration(0.3),
        "market_stale_after": None,
        "backoff_initial": Duration(0.05),
        "backoff_max": Duration(0.2),
        "stable_after": Duration(5.0),
        "close_timeout": Duration(0.5),
        "snapshot_wait": Duration(0.5),
        "auth": AuthSettings(),
    }
    return AccountSettings(**(base | kw))


@attrs.define(eq=False)
class EventLog:
    """Everything received from the shared channel, with waits on it."""

    events: list[Event] = attrs.field(factory=list)
    _changed: trio.Event = attrs.field(factory=trio.Event)

    async def consume(self, receive: trio.MemoryReceiveChannel[Event]) -> None:
        async for event in receive:
            self.events.append(event)
            self._changed.set()
            self._changed = trio.Event()

    def kinds(self) -> list[str]:
        return [e.kind for e in self.events]

    def of(self, kind: str) -> list[Any]:
        return [e for e in self.events if e.kind == kind]

    async def wait_for(self, kind: str, count: int = 1, **fields: Any) -> list[Any]:
        """Wait until ``count`` events of ``kind`` (matching ``fields``) have arrived."""
        while True:
            found = [e for e in self.of(kind) if all(getattr(e, k) == v for k, v in fields.items())]
            if len(found) >= count:
                return found
            await self._changed.wait()


def dec(text: str) -> Decimal:
    return Decimal(text)


async def until(predicate: Callable[[], bool], poll: float = 0.01) -> None:
    """Poll state owned by another task (a counter) that offers nothing to wait on."""
    while not predicate():  # noqa: ASYNC110 - nothing to wait on but the counter itself
        await trio.sleep(poll)
