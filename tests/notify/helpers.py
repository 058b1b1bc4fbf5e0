"""Builders shared by the notify tests."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import trio

from alertd.config.model import ChannelSettings, Config, DispatchSettings, Duration, Secret
from alertd.events import Alert


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
