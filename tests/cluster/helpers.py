"""Helpers for the cluster tests: a websocket exchange on 127.0.0.1 that keeps count of the
connections on each path (``/REPLICA/ACCOUNT``), sends each a balance frame now and then, and
can drop and refuse the connections of a path prefix; and short account settings."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any

import attrs
import trio
import trio_websocket

from alertd.config.model import AccountSettings, Duration

POLL = 0.02  # seconds between looks in wait_for


def balance_frame(value: str) -> str:
    data = {"token": "USDT", "type": "balance", "value": value, "id": 1}
    return json.dumps({"topic": "pinfo", "type": "balance", "data": data})


@attrs.define(eq=False)
class Exchange:
    """The server side; ``open`` holds the paths of the connections up now (one entry each)."""

    port: int = 0
    open: list[str] = attrs.field(factory=list)
    refused: set[str] = attrs.field(factory=set)  # path prefixes whose handshakes are refused
    accepted: int = 0
    frame_interval: float = 0.2
    quiet: set[str] = attrs.field(factory=set)  # accounts whose connections are sent nothing
    _drop: dict[str, trio.Event] = attrs.field(factory=dict)

    def url(self, replica: str, account: str) -> str:
        return f"ws://127.0.0.1:{self.port}/{replica}/{account}"

    def watchers(self) -> dict[str, list[str]]:
        """Each account's replicas connected now, sorted."""
        out: dict[str, list[str]] = {}
        for path in self.open:
            replica, account = path.strip("/").split("/", 1)
            out.setdefault(account, []).append(replica)
        return {a: sorted(rs) for a, rs in out.items()}

    def drop(self, prefix: str, *, refuse: bool = True) -> None:
        """Close every connection whose path starts with ``prefix``; refuse new ones too."""
        if refuse:
            self.refused.add(prefix)
        for path, event in list(self._drop.items()):
            if path.startswith(prefix):
                event.set()

    def allow(self, prefix: str) -> None:
        self.refused.discard(prefix)

    async def handler(self, request: trio_websocket.WebSocketRequest) -> None:
        path = request.path
        if any(path.startswith(p) for p in self.refused):
            await request.reject(503)
            return
        ws = await request.accept()
        self.accepted += 1
        self.open.append(path)
        key = f"{path}#{self.accepted}"
        drop = self._drop[key] = trio.Event()
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._feed, ws, nursery.cancel_scope)
                await drop.wait()
                nursery.cancel_scope.cancel()
            await ws.aclose(1012)
        finally:
            self.open.remove(path)
            del self._drop[key]

    async def _feed(self, ws: trio_websocket.WebSocketConnection, scope: trio.CancelScope) -> None:
        n = 0
        account = ws.path.rstrip("/").rsplit("/", 1)[-1]
        try:
            while True:
                if account in self.quiet:
                    await ws.pong()  # no frame, but a closed connection is noticed
                else:
                    n += 1
                    await ws.send_message(balance_frame(str(1000 + n)))
                await trio.sleep(self.frame_interval)
        except trio_websocket.ConnectionClosed:
            scope.cancel()


async def start_exchange(nursery: trio.Nursery) -> Exchange:
    exchange = Exchange()
    listeners = await nursery.start(
        trio_websocket.serve_websocket, exchange.handler, "127.0.0.1", 0, None
    )
    exchange.port = listeners.port
    return exchange


def account(name: str, url: str, **kw: Any) -> AccountSettings:
    """A Piexgo account with short timings, so a lost connection comes back within a second."""
    base: dict[str, Any] = {
        "name": name,
        "exchange": "piexgo",
        "url": url,
        "connect_timeout": Duration(2.0),
        "ping_interval": Duration(0.5),
        "ping_timeout": Duration(0.5),
        "market_stale_after": None,
        "backoff_initial": Duration(0.1),
        "backoff_max": Duration(0.3),
        "close_timeout": Duration(0.5),
    }
    base.update(kw)
    return AccountSettings(**base)


async def wait_for(check: Callable[[], Any], within: float, what: str) -> Any:
    """Poll ``check`` until it returns something truthy (returned), at most ``within`` s.
    Polled: what it looks at (other processes' output, statistics) sets no trio.Event."""
    with trio.move_on_after(within):
        while not (value := check()):  # noqa: ASYNC110
            await trio.sleep(POLL)
        return value
    raise AssertionError(f"timed out after {within:.1f}s waiting for {what}")


def replica_toml(
    name: str, *, database: str, exchange: Exchange, accounts: list[str], hook: str,
    watchers: int, takeover_after: float, rules: str, daemon: Sequence[str] = (),
) -> str:  # fmt: skip
    """A replica's config: the shared accounts (each on this replica's own path), ``rules``;
    ``daemon``: more lines of its [daemon] table."""
    lines = [
        "[daemon]",
        f'database = "{database}"',
        f'replica = "{name}"',
        f"watchers = {watchers}",
        f'takeover_after = "{takeover_after:g}s"',
        *daemon,
        "",
        "[channels]",
        f'hook = "{hook}"',
        "",
    ]
    for account in accounts:
        lines += [
            "[[accounts]]",
            f'name = "{account}"',
            'exchange = "piexgo"',
            f'url = "{exchange.url(name, account)}"',
            'ping_interval = "1s"',
            'ping_timeout = "1s"',
            'backoff_initial = "100ms"',
            'backoff_max = "500ms"',
            'connect_timeout = "1s"',
            "",
        ]
    return "\n".join(lines) + "\n" + rules
