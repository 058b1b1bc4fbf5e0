"""Shared helpers: a simulator on 127.0.0.1 port 0 and a real trio-websocket client."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial
from typing import Any

import trio
from trio_websocket import WebSocketConnection, wrap_client_stream

from alertd.simulator.server import Simulator, serve


@asynccontextmanager
async def running(**kwargs: Any) -> AsyncIterator[Simulator]:
    async with trio.open_nursery() as nursery:
        sim: Simulator = await nursery.start(partial(serve, **kwargs))
        yield sim
        nursery.cancel_scope.cancel()


async def recv(ws: WebSocketConnection) -> Any:
    return json.loads(await ws.get_message())


async def subscribe(ws: WebSocketConnection, *topics: str, op: str = "subscribe") -> list[Any]:
    """Send (un)subscribes and return every frame up to and including the last ack."""
    for topic in topics:
        await ws.send_message(json.dumps({"op": op, "topic": topic}))
    seen: list[Any] = []
    pending = set(topics)
    while pending:
        frame = await recv(ws)
        seen.append(frame)
        if frame.get("op") == op and frame.get("status") == "ok":
            pending.discard(frame["topic"])
    return seen


async def collect(ws: WebSocketConnection, count: int) -> list[str]:
    return [await ws.get_message() for _ in range(count)]


@asynccontextmanager
async def client(url: str, *, max_message_size: int = 2**20) -> AsyncIterator[WebSocketConnection]:
    """A real trio-websocket client on a TCP stream this helper owns and always closes.

    trio-websocket 0.12.2's own client (``open_websocket_url``) never closes its socket when
    the server closes first (it waits for the server's TCP close, then ``aclose()`` returns
    early), which leaks the socket to the garbage collector and fails warnings-as-errors.
    """
    host_port, _, path = url.removeprefix("ws://").partition("/")
    host, _, port = host_port.rpartition(":")
    stream = await trio.open_tcp_stream(host, int(port))
    try:
        async with trio.open_nursery() as nursery:
            ws = await wrap_client_stream(
                nursery, stream, host_port, "/" + path, max_message_size=max_message_size
            )
            try:
                yield ws
            finally:
                with trio.move_on_after(1):
                    await ws.aclose()
                nursery.cancel_scope.cancel()
    finally:
        await stream.aclose()
