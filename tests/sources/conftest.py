"""Fixtures for the sources tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import trio
import trio_websocket

from alertd.events import Event

from .helpers import EventLog, FakePiexgo


@pytest.fixture
async def fake_piexgo(nursery: trio.Nursery) -> FakePiexgo:
    """A FakePiexgo served on 127.0.0.1, an ephemeral port."""
    fake = FakePiexgo()
    server = await nursery.start(trio_websocket.serve_websocket, fake.handler, "127.0.0.1", 0, None)
    fake.port = server.port
    return fake


@pytest.fixture
def event_channel(
    nursery: trio.Nursery,
) -> Iterator[tuple[trio.MemorySendChannel[Event], EventLog]]:
    """The shared event channel, with an EventLog reading everything sent on it."""
    send, receive = trio.open_memory_channel[Event](100)
    log = EventLog()
    nursery.start_soon(log.consume, receive)
    yield send, log
