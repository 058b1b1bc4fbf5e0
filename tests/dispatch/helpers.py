"""Builders shared by the dispatch tests."""

from __future__ import annotations

import math
import sqlite3
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from datetime import UTC, datetime
from typing import Any, TypeVar

import trio
import trio.testing

from alertd import clock
from alertd.config.model import (
    ChannelSettings,
    Config,
    DaemonSettings,
    DispatchSettings,
    Duration,
    RuleSettings,
    Secret,
)
from alertd.dispatch.dispatcher import Dispatcher
from alertd.dispatch.muting import Muter
from alertd.dispatch.silences import Silences
from alertd.events import Alert
from alertd.store.database import Database
from alertd.store.outbox import Outbox, OutboxRow

T = TypeVar("T")


def make_alert(n: int = 1, **kw: Any) -> Alert:
    fields: dict[str, Any] = {
        "id": f"alert-{n}",
        "rule": "filled",
        "key": "main/BTC_USDT",
        "title": f"Order {n} filled",
        "body": f"buy {n} BTC_USDT filled at 100",
        "channels": ("me",),
        "account": "main",
        "event_kind": "order.filled",
        "created": datetime(2026, 1, 5, 12, 0, n % 60, tzinfo=UTC),
    }
    fields.update(kw)
    return Alert(**fields)


def make_config(
    *,
    channels: dict[str, ChannelSettings] | None = None,
    rules: list[RuleSettings] | None = None,
    timezone: str = "UTC",
    **dispatch: Any,
) -> Config:
    for name in ("group_wait", "group_interval", "inhibit_max"):
        if name in dispatch:
            dispatch[name] = Duration(float(dispatch[name]))
    return Config(
        daemon=DaemonSettings(timezone=timezone),
        channels=channels
        if channels is not None
        else {"me": ChannelSettings(urls=[Secret("fake://me")])},
        rules=rules or [],
        dispatch=DispatchSettings(**dispatch),
    )


@asynccontextmanager
async def running(
    config: Config,
    outbox: Outbox,
    silences: Silences,
    *,
    wall: clock.Wall = clock.wall,
    muter: Muter | None = None,
) -> AsyncIterator[trio.MemorySendChannel[Alert]]:
    """A Dispatcher running in the background (with ``muter``, to share it with a
    Delivery; else one of its own over ``silences``); yields the channel to send it alerts."""
    send, receive = trio.open_memory_channel[Alert](100)
    muter = muter if muter is not None else Muter(config, silences)
    dispatcher = Dispatcher(config, outbox, muter, wall=wall)
    async with trio.open_nursery() as nursery:
        await nursery.start(dispatcher.run, receive)
        yield send
        nursery.cancel_scope.cancel()


# Per mock clock: (pauses in force, the autojump threshold to restore when none is).
_PAUSES: dict[int, tuple[int, float]] = {}


@contextmanager
def no_jumps(clock: trio.abc.Clock | None = None) -> Iterator[None]:
    """Virtual time stands still meanwhile: for work in worker threads that takes real time
    (SQLite, the command line), which must not let a mock clock jump to the next deadline (a
    group's, or the test's own fail_after) just because every task waits for the thread: on
    a busy machine such a call can take longer than the autojump threshold. Pauses from
    several tasks may overlap; the clock jumps again once none is in force."""
    clock = clock if clock is not None else trio.lowlevel.current_clock()
    if not isinstance(clock, trio.testing.MockClock):
        yield
        return
    key = id(clock)
    count, threshold = _PAUSES.get(key, (0, clock.autojump_threshold))
    _PAUSES[key] = (count + 1, threshold)
    clock.autojump_threshold = math.inf
    try:
        yield
    finally:
        count, threshold = _PAUSES.pop(key)
        if count > 1:
            _PAUSES[key] = (count - 1, threshold)
        else:
            clock.autojump_threshold = threshold


class PausingDatabase(Database):
    """The state database, with virtual time standing still while a call runs in its
    worker thread (``no_jumps``)."""

    async def run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        with no_jumps():
            return await super().run(fn)

    async def write(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        with no_jumps():
            return await super().write(fn)


async def settle(seconds: float = 1.0) -> None:
    """Let the dispatcher's database writes and timers run (virtual time)."""
    await trio.sleep(seconds)


async def queued(outbox: Outbox) -> list[OutboxRow]:
    return await outbox.rows()
