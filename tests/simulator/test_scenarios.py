"""Each misbehaving scenario visibly misbehaves, against a real client."""

from __future__ import annotations

import json

import pytest
import trio
from trio_websocket import ConnectionClosed, HandshakeError, WebSocketConnection

from .helpers import client, collect, recv, running, subscribe


async def closed_code(ws: WebSocketConnection) -> int:
    """Read until the server closes; the close code the client saw."""
    with pytest.raises(ConnectionClosed) as closed:
        while True:
            await ws.get_message()
    return int(closed.value.reason.code)


async def test_drop_closes_mid_stream_cleanly_then_abruptly(clock: trio.abc.Clock) -> None:
    """drop closes streaming connections every 8 s, first with 1011, then with a bare TCP
    close (1006 at the client), and accepts the reconnects."""
    with trio.fail_after(60):
        async with running(scenario="drop") as sim:
            start = trio.current_time()
            async with client(sim.url("cryptology")) as ws:
                assert await closed_code(ws) == 1011
            assert 7.9 < trio.current_time() - start < 8.5
            async with client(sim.url("cryptology")) as ws:
                await ws.get_message()  # streaming again
                assert await closed_code(ws) == 1006
            assert sim.connects_total == 2


async def test_half_open_stops_sending_and_answering_pings_without_closing(
    clock: trio.abc.Clock,
) -> None:
    """half-open: 5 s after connecting, frames and pongs stop but the connection stays open,
    while a new connection is served normally."""
    with trio.fail_after(120):
        async with running(scenario="half-open") as sim, client(sim.url("cryptology")) as ws:
            await ws.ping(b"alive")  # answered at first
            await trio.sleep(6)
            with trio.move_on_after(10) as no_pong:
                await ws.ping(b"dead?")
            assert no_pong.cancelled_caught
            with trio.move_on_after(10) as no_frames:
                while True:  # drain what was in flight before the freeze
                    await ws.get_message()
            assert no_frames.cancelled_caught
            assert ws.closed is None
            assert sim.connection_count("cryptology") == 0
            async with client(sim.url("cryptology")) as fresh:
                assert "@type" in await recv(fresh)
                await fresh.ping(b"fresh")


async def test_go_half_open_and_resume(clock: trio.abc.Clock) -> None:
    """go_half_open() freezes open connections (no pong, no frames) and resume() thaws them."""
    with trio.fail_after(60):
        async with running() as sim, client(sim.url("piexgo")) as ws:
            await subscribe(ws, "pinfo", "dealinfo.btc_usdt")
            sim.go_half_open()
            with trio.move_on_after(5) as no_pong:
                await ws.ping(b"x")
            assert no_pong.cancelled_caught
            assert sim.subscriptions("piexgo") == set()
            sim.resume()
            await ws.ping(b"y")
            assert json.loads(await ws.get_message())["topic"] in ("pinfo", "dealinfo")
            assert sim.subscriptions("piexgo") == {"pinfo", "dealinfo.btc_usdt"}


async def test_garbage_interleaves_malformed_unknown_and_oversize_frames() -> None:
    """garbage sends truncated JSON, non-objects, unknown topics and types, and >1 MiB frames
    between ordinary frames."""
    with trio.fail_after(30):
        async with running(scenario="garbage", rate=100.0) as sim:
            async with client(sim.url("piexgo"), max_message_size=4 * 2**20) as ws:
                await subscribe(ws, "pinfo", "depth.btc_usdt", "dealinfo.btc_usdt")
                piexgo = await collect(ws, 150)
            async with client(sim.url("cryptology"), max_message_size=4 * 2**20) as ws:
                cryptology = await collect(ws, 150)
    for frames, known in ((piexgo, "topic"), (cryptology, "@type")):
        kinds = set()
        for text in frames:
            if len(text) > 2**20:
                kinds.add("oversize")
                continue
            try:
                obj = json.loads(text)
            except ValueError:
                kinds.add("not JSON")
                continue
            if not isinstance(obj, dict):
                kinds.add("not an object")
            elif known not in obj:
                kinds.add("no kind")
            elif obj[known] in ("kline", "MarginCallIssued") or obj.get("type") == "position":
                kinds.add("unknown")
            else:
                kinds.add("good")
        assert {"oversize", "not JSON", "not an object", "unknown", "good"} <= kinds


async def test_restart_closes_everything_and_refuses_then_accepts(
    clock: trio.abc.Clock,
) -> None:
    """restart closes connections with 1012 every 10 s, refuses connections for 3 s, then
    accepts them again on the same port."""
    with trio.fail_after(60):
        async with running(scenario="restart") as sim:
            port = sim.port
            async with client(sim.url("cryptology")) as ws:
                assert await closed_code(ws) == 1012
            down = trio.current_time()
            with pytest.raises((OSError, HandshakeError)):
                async with client(sim.url("cryptology")):
                    pass
            await sim.wait_accepting()
            assert 2.9 < trio.current_time() - down < 3.5
            assert sim.port == port
            async with client(sim.url("cryptology")) as ws:
                assert "@type" in await recv(ws)


async def test_quiet_answers_subscriptions_but_streams_nothing(clock: trio.abc.Clock) -> None:
    """quiet acknowledges a subscribe (with the pinfo snapshot) and then sends nothing."""
    with trio.fail_after(200):
        async with running(scenario="quiet") as sim:
            async with client(sim.url("piexgo")) as ws:
                answers = await subscribe(ws, "pinfo", "depth.btc_usdt")
                assert [f.get("type") for f in answers] == [
                    None,
                    "balance",
                    "balance",
                    "balance",
                    None,
                ]
                with trio.move_on_after(60) as silent:
                    await ws.get_message()
                assert silent.cancelled_caught
            async with client(sim.url("cryptology")) as ws:
                with trio.move_on_after(60) as silent:
                    await ws.get_message()
                assert silent.cancelled_caught


async def test_flood_streams_at_the_given_rate() -> None:
    """flood sends order, balance and trade frames paced at --rate, not faster."""
    rate, count = 4000.0, 4000
    with trio.fail_after(30):
        async with (
            running(scenario="flood", rate=rate) as sim,
            client(sim.url("cryptology")) as ws,
        ):
            first = await ws.get_message()
            start = trio.current_time()
            frames = [first, *await collect(ws, count - 1)]
            elapsed = trio.current_time() - start
    types = {json.loads(f)["@type"] for f in frames}
    assert {"SetBalance", "AnonymousTrade", "BuyOrderPlaced", "SellOrderPlaced"} <= types
    assert "OrderBookAgg" not in types
    assert elapsed >= (count - 1) / rate * 0.9


async def test_flood_coroutine_sends_exactly_count_frames() -> None:
    """Simulator.flood(exchange, count, rate) delivers count frames and then stops."""
    with trio.fail_after(30):
        async with running(scenario="quiet") as sim, client(sim.url("cryptology")) as ws:
            await sim.wait_connected("cryptology")
            assert await sim.flood("cryptology", 300, 3000.0) == 300
            frames = await collect(ws, 300)
            assert all("@type" in json.loads(f) for f in frames)
            with trio.move_on_after(0.3) as silent:
                await ws.get_message()
            assert silent.cancelled_caught
            assert sim.frames_sent["cryptology"] == 300
