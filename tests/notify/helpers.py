"""Builders shared by the notify tests."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import trio

from alertd.config.model import ChannelSettings, Config, DispatchSettings, Duration, Secret
from alertd.dispatch.dispatcher import Dispatcher
from alertd.dispatch.muting import Muter
from alertd.dispatch.silences import Silences
from alertd.events import Alert
from alertd.notify.delivery import Delivery
from alertd.store.database import Database, db_path
from alertd.store.notifications import Notification
from alertd.store.outbox import Outbox
from alertd.store.writes import Record


def make_alert(n: int = 1, **kw: Any) -> Alert:
    fields: dict[str, Any] = {
        "id": f"alert-{n}",
        "rule": "filled",
        "key": "main/BTC_USDT",
        "title": f"Order {n} filled",
        "body": f"buy {n} BTC_USDT filled at 100",
        "account": "main",
        "event_kind": "order.filled",
        "created": datetime(2026, 1, 5, 12, 0, n % 60, tzinfo=UTC),
    }
    fields.update(kw)
    return Alert(**fields)


def channel(*urls: str, **kw: Any) -> ChannelSettings:
    return ChannelSettings(urls=[Secret(u, source="test") for u in urls], **kw)


def make_config(channels: dict[str, ChannelSettings], **dispatch: Any) -> Config:
    for name in ("group_wait", "group_interval", "retry_initial", "retry_max", "max_age"):
        if name in dispatch:
            dispatch[name] = Duration(float(dispatch[name]))
    return Config(channels=channels, dispatch=DispatchSettings(**dispatch))


async def wait_until(predicate: Callable[[], bool], *, step: float = 0.5) -> None:
    """Poll ``predicate`` (callers bound this with trio.fail_after)."""
    while not predicate():  # noqa: ASYNC110 - the fakes have no event to wait on
        await trio.sleep(step)


async def dispatch_and_deliver(
    tmp_path: Path, config: Any, alerts: list[Any], wall: float, notifier: Any, sends: int
) -> Delivery:
    """``alerts`` through a real dispatcher and delivery (a SQLite outbox) at Unix time
    ``wall``, until ``sends`` messages were delivered and a moment more."""
    db = Database(db_path(tmp_path))
    outbox = Outbox(db)
    muter = Muter(config, Silences(db))
    delivery = Delivery(config, outbox, notifier, muting=muter, wall=lambda: wall)
    dispatcher = Dispatcher(config, outbox, muter, wall=lambda: wall)
    send, receive = trio.open_memory_channel[Any](10)
    try:
        async with trio.open_nursery() as nursery:
            await nursery.start(delivery.run)
            await nursery.start(dispatcher.run, receive)
            for alert in alerts:
                await send.send(alert)
            await wait_until(lambda: delivery.statistics().delivered >= sends, step=0.05)
            await trio.sleep(0.5)  # time for a send that should not happen
            nursery.cancel_scope.cancel()
    finally:
        db.close()
    return delivery


def sent(alerts: Sequence[Alert], now: float, notifications: Sequence[Notification]) -> Record:
    """Dispatch's one write for ``alerts`` that go out at once: each sent, ``notifications``
    queued."""
    return Record(
        now=now, alerts=tuple((a, "sent") for a in alerts), notifications=tuple(notifications)
    )
