"""The evidence of a gap against a real websocket server that speaks only what the Piexgo
document says: it acks no subscribe and sends no balance snapshot, only the frames the test
pushes. What moved while blind is still reported, from the first balance after the gap."""

from __future__ import annotations

from decimal import Decimal

import attrs
import trio
import trio_websocket

from alertd.sources.session import Session

from .helpers import EventLog, account, balance_frame


@attrs.define(eq=False)
class DocumentOnlyPiexgo:
    """Reads what the client sends and answers nothing; ``push`` sends to the current
    connection, ``drop`` closes it (1011)."""

    port: int = 0
    current: trio_websocket.WebSocketConnection | None = None
    connects: int = 0
    changed: trio.Event = attrs.field(factory=trio.Event)

    async def handler(self, request: trio_websocket.WebSocketRequest) -> None:
        ws = await request.accept()
        self.current, self.connects = ws, self.connects + 1
        self.changed.set()
        self.changed = trio.Event()
        try:
            while True:
                await ws.get_message()
        except trio_websocket.ConnectionClosed:
            pass

    async def connected(self, count: int) -> None:
        while self.connects < count:
            await self.changed.wait()


async def test_a_balance_that_moved_while_blind_is_evidence_without_any_snapshot(
    nursery: trio.Nursery, event_channel: tuple[trio.MemorySendChannel, EventLog]
) -> None:
    """BTC 1.0 before a drop and 1.6 first after the reconnect: the gap (empty evidence, no
    snapshot came) and then a stream.gap.evidence for BTC within the gap's window."""
    server = DocumentOnlyPiexgo()
    listener = await nursery.start(
        trio_websocket.serve_websocket, server.handler, "127.0.0.1", 0, None
    )
    server.port = listener.port
    send, log = event_channel
    settings = account(f"ws://127.0.0.1:{server.port}/ws", streams=["pinfo"])
    with trio.fail_after(5):
        await nursery.start(Session(settings=settings, send=send).run)
        await server.connected(1)
        await log.wait_for("stream.connected")
        assert server.current is not None
        await server.current.send_message(balance_frame("BTC", "1.0"))
        await log.wait_for("balance.changed")
        await server.current.aclose(1011)
        await server.connected(2)
        [gap] = await log.wait_for("stream.gap")  # after snapshot_wait (0.5 s): none came
        await server.current.send_message(balance_frame("BTC", "1.6"))
        [moved] = await log.wait_for("stream.gap.evidence")
    assert gap.evidence == () and gap.why == "offline"
    assert (moved.currency, moved.before, moved.after) == ("BTC", Decimal("1.0"), Decimal("1.6"))
    assert (moved.since, moved.until) == (gap.since, gap.until)
    assert log.kinds().index("stream.gap") < log.kinds().index("stream.gap.evidence")
