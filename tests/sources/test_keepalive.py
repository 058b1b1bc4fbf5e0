"""The process's one keepalive (sources/keepalive) against a real websocket peer on 127.0.0.1
that answers pings until told to stop: a peer that stops answering is dropped within
ping_interval + ping_timeout (and the keepalive's tick), the others stay up, and a connected
account runs on two trio tasks."""

from __future__ import annotations

import attrs
import trio
import wsproto
from wsproto.events import AcceptConnection, CloseConnection, Ping, Request

from alertd.events import Event
from alertd.sources.keepalive import TICK
from alertd.sources.supervisor import Sources

from .helpers import EventLog, account, until

INTERVAL, TIMEOUT = 0.2, 0.3  # helpers.account's ping_interval and ping_timeout


@attrs.define(eq=False)
class PingPeer:
    """A websocket server (wsproto over a trio TCP listener) that accepts every handshake,
    ignores messages and answers each ping, except on connections whose ``?a=`` name is in
    ``silent``; those stay open and read on, answering nothing (a half-open path)."""

    silent: set[str] = attrs.field(factory=set)
    pings: dict[str, int] = attrs.field(factory=dict)  # by connection name
    open: set[str] = attrs.field(factory=set)
    port: int = 0

    async def start(self, nursery: trio.Nursery) -> None:
        [listener] = await trio.open_tcp_listeners(0, host="127.0.0.1")
        self.port = listener.socket.getsockname()[1]
        nursery.start_soon(trio.serve_listeners, self._serve, [listener])

    def url(self, name: str) -> str:
        return f"ws://127.0.0.1:{self.port}/piexgo/ws?a={name}"

    async def _serve(self, stream: trio.SocketStream) -> None:
        ws = wsproto.WSConnection(wsproto.ConnectionType.SERVER)
        name = ""
        async with stream:
            try:
                while data := await stream.receive_some():
                    ws.receive_data(data)
                    for event in ws.events():
                        if isinstance(event, Request):
                            name = event.target.rpartition("?a=")[2]
                            self.open.add(name)
                            await stream.send_all(ws.send(AcceptConnection()))
                        elif isinstance(event, Ping):
                            self.pings[name] = self.pings.get(name, 0) + 1
                            if name not in self.silent:
                                await stream.send_all(ws.send(event.response()))
                        elif isinstance(event, CloseConnection):
                            await stream.send_all(ws.send(event.response()))
                            return
            except trio.BrokenResourceError:
                pass
            finally:
                self.open.discard(name)


async def test_a_peer_that_stops_answering_pings_is_dropped_and_the_others_stay_up() -> None:
    """Three accounts share the keepalive; when one peer stops answering pings its account
    is dropped as half-open within ping_interval + ping_timeout (plus one tick) of its last
    pong and reconnects, while the other two, still answering, are never dropped."""
    peer = PingPeer()
    with trio.fail_after(15):
        async with trio.open_nursery() as nursery:
            await peer.start(nursery)
            send, receive = trio.open_memory_channel[Event](1000)
            log = EventLog()
            nursery.start_soon(log.consume, receive)
            settings = [account(peer.url(n), name=n, streams=["pinfo"]) for n in "abc"]
            sources = Sources(settings, send)
            await nursery.start(sources.run)
            await log.wait_for("stream.connected", 3)
            await until(lambda: all(peer.pings.get(n, 0) >= 3 for n in "abc"))  # answered
            assert not log.of("stream.disconnected")
            peer.silent.add("b")
            silent_from = trio.current_time()
            [down] = await log.wait_for("stream.disconnected")
            noticed = trio.current_time() - silent_from
            peer.silent.clear()
            await log.wait_for("stream.connected", 4)
            pinged = dict(peer.pings)
            await until(lambda: all(peer.pings[n] >= pinged[n] + 2 for n in "ac"))
            nursery.cancel_scope.cancel()
    assert down.account == "b"
    assert down.reason == f"no pong within {TIMEOUT:g}s (connection half-open)"
    # The last pong came at most one interval before the silence; then a ping, its timeout.
    assert noticed <= INTERVAL + TIMEOUT + 2 * TICK + 0.3  # 0.3 s for a loaded machine
    assert noticed >= TIMEOUT
    assert [e.account for e in log.of("stream.disconnected")] == ["b"]
    assert sources.keepalive.statistics().dead == 1


def _tasks_under(task: trio.lowlevel.Task) -> int:
    return sum(1 + _tasks_under(child) for n in task.child_nurseries for child in n.child_tasks)


async def test_an_idle_connected_account_runs_on_two_tasks() -> None:
    """Twenty connected idle accounts (account streams only, nothing waiting to be forwarded)
    run on two trio tasks each (the supervisor's, which also reads the frames, and
    trio-websocket's reader) plus the one keepalive: no reading, heartbeat, ticking or
    forwarding task per account (six before)."""
    peer = PingPeer()
    accounts = 20
    with trio.fail_after(15):
        async with trio.open_nursery() as nursery:
            await peer.start(nursery)
            send, receive = trio.open_memory_channel[Event](1000)
            log = EventLog()
            nursery.start_soon(log.consume, receive)
            settings = [
                account(peer.url(str(i)), name=f"a{i}", streams=["pinfo"]) for i in range(accounts)
            ]
            sources = Sources(settings, send)
            runner: list[trio.lowlevel.Task] = []

            async def run_sources(*, task_status: trio.TaskStatus[None]) -> None:
                runner.append(trio.lowlevel.current_task())
                await sources.run(task_status=task_status)

            await nursery.start(run_sources)
            await log.wait_for("stream.connected", accounts)
            await until(lambda: sum(peer.pings.values()) >= accounts)  # pings go out
            await trio.sleep(2 * TICK)  # no ping in flight right now, mostly
            while sources.keepalive.statistics().in_flight:  # noqa: ASYNC110 (a counter)
                await trio.sleep(0.01)
            tasks = _tasks_under(runner[0])
            nursery.cancel_scope.cancel()
    assert tasks == 2 * accounts + 1
