"""A byte stream that can be shut like a dead network path, for the half-open scenario.

trio-websocket answers pings from its own background reader task, for as long as that task
runs, whether or not anyone calls ``get_message()``; there is no public switch to stop it. So
the simulator stops the bytes underneath instead: while the valve is shut, ``send_all`` and
``receive_some`` wait, so the reader neither sees pings nor sends pongs, no frame and no close
frame leaves, and the TCP connection stays up. ``open()`` lets everything through again.
"""

from __future__ import annotations

import trio


class Valve(trio.abc.Stream):
    def __init__(self, inner: trio.abc.Stream) -> None:
        self._inner = inner
        self._open = trio.Event()
        self._open.set()
        self._closed = False

    @property
    def is_shut(self) -> bool:
        return not self._open.is_set()

    def shut(self) -> None:
        if self._open.is_set():
            self._open = trio.Event()

    def open(self) -> None:
        self._open.set()

    async def _pass(self) -> None:
        while not self._open.is_set():
            await self._open.wait()
        if self._closed:
            raise trio.ClosedResourceError("the valve's stream is closed")

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        await self._pass()
        await self._inner.send_all(data)

    async def wait_send_all_might_not_block(self) -> None:
        await self._pass()
        await self._inner.wait_send_all_might_not_block()

    async def receive_some(self, max_bytes: int | None = None) -> bytes | bytearray:
        await self._pass()
        return await self._inner.receive_some(max_bytes)

    async def aclose(self) -> None:
        """Close the TCP connection at once, shut or not (waiters get ClosedResourceError)."""
        self._closed = True
        self._open.set()
        await self._inner.aclose()
