"""The Simulator handle that tests and the demo use to watch and steer the server."""

from __future__ import annotations

import pytest
import trio
from trio_websocket import ConnectionRejected

from .helpers import client, running, subscribe


async def test_handle_tracks_connections_subscriptions_and_sent_frames() -> None:
    """connection_count, subscriptions, connects_total and frames_sent follow what clients do."""
    with trio.fail_after(10):
        async with running(scenario="quiet") as sim:
            assert sim.url("piexgo") == f"ws://127.0.0.1:{sim.port}/piexgo/ws"
            async with client(sim.url("piexgo")) as a, client(sim.url("piexgo")) as b:
                await sim.wait_connected("piexgo", 2)
                await subscribe(a, "depth.btc_usdt")
                await subscribe(b, "dealinfo.eth_usdt")
                await sim.wait_subscribed("piexgo", ["depth.btc_usdt", "dealinfo.eth_usdt"])
                assert sim.connection_count("piexgo") == 2
                assert sim.frames_sent["piexgo"] == 2  # the two acks
            await sim.wait_until(lambda: sim.connection_count("piexgo") == 0)
            assert sim.subscriptions("piexgo") == set()
            assert sim.connects_total == 2


async def test_send_raw_reaches_every_connection_of_the_exchange_verbatim() -> None:
    """send_raw injects a frame as-is into every connection of one exchange only."""
    with trio.fail_after(10):
        async with (
            running(scenario="quiet") as sim,
            client(sim.url("piexgo")) as p,
            client(sim.url("cryptology")) as c,
        ):
            await sim.wait_connected("piexgo")
            await sim.wait_connected("cryptology")
            assert sim.send_raw("piexgo", '{"topic":"pinfo",') == 1
            assert await p.get_message() == '{"topic":"pinfo",'
            with trio.move_on_after(0.2) as nothing:
                await c.get_message()
            assert nothing.cancelled_caught


async def test_unknown_path_is_rejected_with_404() -> None:
    """A websocket upgrade on a path that is neither exchange's is refused with HTTP 404."""
    with trio.fail_after(10):
        async with running(scenario="quiet") as sim:
            with pytest.RaisesGroup(ConnectionRejected, flatten_subgroups=True) as rejected:
                async with client(f"ws://127.0.0.1:{sim.port}/ws"):
                    pass
            error = rejected.value.exceptions[0]
            assert isinstance(error, ConnectionRejected)
            assert error.status_code == 404
            assert b"/piexgo/ws" in (error.body or b"")


async def test_drop_connections_and_refuse_for_on_demand(clock: trio.abc.Clock) -> None:
    """drop_connections closes one exchange's connections; refuse_for refuses, then accepts."""
    with trio.fail_after(60):
        async with running(scenario="quiet") as sim:
            async with client(sim.url("piexgo")) as p, client(sim.url("cryptology")) as c:
                await sim.wait_connected("cryptology")
                await sim.wait_connected("piexgo")
                assert sim.drop_connections("piexgo", code=4000, reason="test") == 1
                with pytest.raises(Exception, match="4000"):
                    await p.get_message()
                assert sim.connection_count("cryptology") == 1
                sim.refuse_for(5)
                assert not sim.accepting
                with pytest.raises(Exception, match="1012"):
                    await c.get_message()
            with pytest.raises(OSError):
                await trio.open_tcp_stream("127.0.0.1", sim.port)
            await sim.wait_accepting()
            async with client(sim.url("piexgo")):
                await sim.wait_connected("piexgo")
