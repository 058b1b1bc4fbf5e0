"""The exchange simulator's websocket server: both protocols on one port, each on its own path
(``/piexgo/ws``, ``/cryptology/ws``), streaming ``activity`` through ``frames``, with the faults
of the chosen scenario.

``serve()`` is the entry point; it hands a ``Simulator`` to ``task_status.started()`` so that
tests and the demo can watch connections and inject faults. Cancelling ``serve()`` closes every
connection (1001, bounded by ``CLOSE_TIMEOUT``) and the listener.
"""

from __future__ import annotations

import itertools
import logging
import math
import random
import time
from collections.abc import Callable, Iterable, Mapping

import attrs
import trio
from trio_websocket import (
    ConnectionClosed,
    WebSocketConnection,
    WebSocketRequest,
    wrap_server_stream,
)

from alertd.simulator import frames, inbound
from alertd.simulator.activity import Activity, Fact
from alertd.simulator.scenarios import Scenario, get_scenario
from alertd.simulator.valve import Valve

logger = logging.getLogger(__name__)

EXCHANGES = ("piexgo", "cryptology")
PATHS = {"/piexgo/ws": "piexgo", "/cryptology/ws": "cryptology"}
OUTBOX_SIZE = 1024  # frames queued per connection; a slower client slows the world down
HANDSHAKE_TIMEOUT = 10.0  # seconds for a client to finish the HTTP upgrade
CLOSE_TIMEOUT = 2.0  # seconds to wait for the client's close frame before cutting TCP
MAX_CLIENT_MESSAGE = 64 * 1024  # client frames are a few hundred bytes at most
FLOOD_MIN_SLEEP = 0.002  # below this, sleeping costs more than the pacing it buys
REBIND_ATTEMPTS = 50  # x 0.1 s: re-binding the same port after a simulated restart
MEAN_STEP = 0.6  # seconds; the default scenario pacing (0.3..0.9) averages this


@attrs.define(eq=False)
class _Conn:
    id: int
    exchange: str
    ws: WebSocketConnection
    valve: Valve
    outbox: trio.MemorySendChannel[str]
    ready: bool  # logged in, or no login required
    topics: set[str] = attrs.field(factory=set)
    scope: trio.CancelScope = attrs.field(factory=trio.CancelScope)
    close_code: int = 1001
    close_reason: str = "server shutting down"
    abrupt: bool = False  # close the TCP connection without a close frame


class Simulator:
    """Handle on a running simulator (from ``serve()``'s ``task_status.started``).

    Fault methods are synchronous and take effect at once; the ``wait_*`` coroutines wait for
    what clients do. ``frames_sent`` counts frames written per exchange (acks included).
    """

    def __init__(
        self,
        *,
        host: str,
        port: int,
        scenario: Scenario,
        seed: int,
        rate: float | None,
        credentials: Mapping[str, str] | None,
        epoch: float | None,
    ) -> None:
        self.host = host
        self.port = port
        self.scenario = scenario
        self.seed = seed
        self.credentials = dict(credentials) if credentials is not None else None
        self.login_required = credentials is not None or scenario.reject_login
        self.flood_rate = rate if (rate and scenario.flood_rate) else scenario.flood_rate
        # --rate outside the flood scenario sets the ordinary pace in actions per second
        self._pace = 1.0 if (rate is None or scenario.flood_rate) else 1.0 / (rate * MEAN_STEP)
        self._epoch = epoch
        self.connects_total = 0
        self.frames_sent: dict[str, int] = dict.fromkeys(EXCHANGES, 0)
        self._conns: dict[str, set[_Conn]] = {e: set() for e in EXCHANGES}
        self._worlds: dict[str, Activity] = {}
        self._frame_no = itertools.count()
        self._conn_ids = itertools.count(1)
        self._valves: set[Valve] = set()
        self._freeze_new = False
        self._listener: trio.SocketListener | None = None
        self._refusals = 0  # generation of refuse_for(), so overlapping calls reopen once
        self._changed = trio.Event()
        self._nursery: trio.Nursery | None = None

    # --- public handle ---------------------------------------------------------------------

    def url(self, exchange: str) -> str:
        path = next(p for p, e in PATHS.items() if e == exchange)
        return f"ws://{self.host}:{self.port}{path}"

    def connection_count(self, exchange: str) -> int:
        """Open connections of ``exchange`` that are not half-open."""
        return len(self._live(exchange))

    def subscriptions(self, exchange: str) -> set[str]:
        """Topics subscribed by open, not half-open connections (Cryptology: always empty)."""
        return set().union(*(c.topics for c in self._live(exchange)))

    @property
    def accepting(self) -> bool:
        return self._listener is not None

    async def wait_connected(self, exchange: str, n: int = 1) -> None:
        await self.wait_until(lambda: self.connection_count(exchange) >= n)

    async def wait_subscribed(self, exchange: str, topics: Iterable[str]) -> None:
        wanted = set(topics)
        await self.wait_until(lambda: wanted <= self.subscriptions(exchange))

    async def wait_accepting(self) -> None:
        await self.wait_until(lambda: self.accepting)

    def drop_connections(
        self,
        exchange: str | None = None,
        *,
        code: int = 1011,
        reason: str = "simulated drop",
        abrupt: bool = False,
    ) -> int:
        """Close every connection (of ``exchange``) mid-stream: with a close frame ``code``, or
        with ``abrupt`` a bare TCP close the client sees as 1006. Returns how many."""
        conns = [c for e in self._exchanges(exchange) for c in self._conns[e]]
        for c in conns:
            c.close_code, c.close_reason, c.abrupt = code, reason, abrupt
            c.scope.cancel()
        if conns:
            logger.info("simulator.drop count=%s abrupt=%s", len(conns), abrupt)
        return len(conns)

    def go_half_open(self, exchange: str | None = None, *, include_new: bool = False) -> None:
        """Open connections (of ``exchange``) stop sending, reading and answering pings, and
        stay open. With ``include_new``, connections accepted from now on freeze too (their
        handshake never completes). ``resume()`` undoes both."""
        for e in self._exchanges(exchange):
            for c in self._conns[e]:
                c.valve.shut()
        if include_new:
            self._freeze_new = True
            if exchange is None:
                for v in self._valves:
                    v.shut()
        logger.info("simulator.half_open exchange=%s include_new=%s", exchange, include_new)
        self._notify()

    def resume(self) -> None:
        """Undo ``go_half_open()``: frozen connections flow again (frames generated meanwhile
        are lost, as on a broken path)."""
        self._freeze_new = False
        for v in self._valves:
            v.open()
        logger.info("simulator.resume")
        self._notify()

    def refuse_for(self, seconds: float) -> None:
        """Restart: close every connection (1012), refuse new ones (connection refused) for
        ``seconds``, then accept again on the same port."""
        self.drop_connections(code=1012, reason="service restart")
        self._refusals += 1
        if self._listener is not None:
            listener, self._listener = self._listener, None
            listener.socket.close()  # synchronous, so refusal starts now; accept() wakes up
        logger.info("simulator.refusing seconds=%.1f", seconds)
        self._notify()
        assert self._nursery is not None, "refuse_for() needs a running simulator"
        self._nursery.start_soon(self._reopen_after, seconds, self._refusals)

    def send_raw(self, exchange: str, text: str | bytes) -> int:
        """Queue ``text`` as-is to every open connection of ``exchange``, subscribed or not.
        Returns how many connections it was queued to."""
        queued = 0
        for c in list(self._conns[exchange]):
            try:
                c.outbox.send_nowait(text)  # type: ignore[arg-type]
                queued += 1
            except trio.WouldBlock:
                logger.warning("simulator.send_raw_dropped conn=%s outbox full", c.id)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                pass
        return queued

    async def flood(self, exchange: str, count: int | None, rate: float) -> int:
        """Stream ``count`` (None: forever) order, balance and trade frames of ``exchange`` at
        ``rate`` frames per second, each to the connections it is for. Returns frames made."""
        world = self._world(exchange)
        start, made = trio.current_time(), 0
        dt_us = max(1, int(1_000_000 / rate))
        while count is None or made < count:
            world.advance(dt_us)
            for topic, text in self._render(exchange, world.flood_step()):
                due = start + made / rate
                if due - trio.current_time() > FLOOD_MIN_SLEEP:
                    await trio.sleep_until(due)
                await self._broadcast(exchange, topic, text)
                made += 1
                if count is not None and made >= count:
                    break
        return made

    # --- running ---------------------------------------------------------------------------

    async def run(
        self, *, task_status: trio.TaskStatus[Simulator] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Listen, serve, and run the scenario until cancelled."""
        listeners = await trio.open_tcp_listeners(self.port, host=self.host)
        for extra in listeners[1:]:  # one address is enough for a loopback test server
            await extra.aclose()
        self._listener = listeners[0]
        self.port = self._listener.socket.getsockname()[1]
        try:
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                nursery.start_soon(self._accept_loop)
                if self.scenario.drop_every:
                    nursery.start_soon(self._drop_loop, self.scenario.drop_every)
                if self.scenario.restart_every:
                    nursery.start_soon(self._restart_loop, self.scenario.restart_every)
                logger.info(
                    "simulator.listening port=%s scenario=%s seed=%s",
                    self.port,
                    self.scenario.name,
                    self.seed,
                )
                task_status.started(self)
        finally:
            if self._listener is not None:
                self._listener.socket.close()
                self._listener = None

    async def _accept_loop(self) -> None:
        while True:
            listener = self._listener
            if listener is None:
                await self.wait_accepting()
                continue
            try:
                stream = await listener.accept()
            except trio.ClosedResourceError:
                continue  # refuse_for() closed it; wait for the next one
            except OSError as exc:  # e.g. out of file descriptors: back off, keep serving
                logger.warning("simulator.accept_failed error=%s", exc)
                await trio.sleep(0.1)
                continue
            assert self._nursery is not None
            self._nursery.start_soon(self._serve_stream, stream)

    async def _reopen_after(self, seconds: float, generation: int) -> None:
        await trio.sleep(seconds)
        if generation != self._refusals or self._listener is not None:
            return
        for _ in range(REBIND_ATTEMPTS):
            try:
                listeners = await trio.open_tcp_listeners(self.port, host=self.host)
                break
            except OSError as exc:
                logger.warning("simulator.rebind_failed port=%s error=%s", self.port, exc)
                await trio.sleep(0.1)
        else:
            raise RuntimeError(f"simulator could not re-bind port {self.port} after a restart")
        for extra in listeners[1:]:
            await extra.aclose()
        self._listener = listeners[0]
        logger.info("simulator.accepting port=%s", self.port)
        self._notify()

    async def _drop_loop(self, every: float) -> None:
        abrupt = False
        while True:
            await trio.sleep(every)
            self.drop_connections(abrupt=abrupt)
            abrupt = not abrupt

    async def _restart_loop(self, every: float) -> None:
        while True:
            await trio.sleep(every)
            self.refuse_for(self.scenario.restart_down)
            await self.wait_accepting()

    # --- one connection --------------------------------------------------------------------

    async def _serve_stream(self, stream: trio.SocketStream) -> None:
        valve = Valve(stream)
        if self._freeze_new:
            valve.shut()
        self._valves.add(valve)
        try:
            async with trio.open_nursery() as nursery:  # hosts trio-websocket's reader task
                try:
                    await self._handshake(nursery, valve)
                finally:
                    nursery.cancel_scope.cancel()
        finally:
            self._valves.discard(valve)
            await valve.aclose()

    async def _handshake(self, nursery: trio.Nursery, valve: Valve) -> None:
        request: WebSocketRequest | None = None
        # a frozen connection must not time out either: half-open means nothing happens
        with trio.move_on_after(math.inf if valve.is_shut else HANDSHAKE_TIMEOUT):
            request = await wrap_server_stream(nursery, valve, max_message_size=MAX_CLIENT_MESSAGE)
        if request is None:
            return
        path = request.path.split("?", 1)[0]
        exchange = PATHS.get(path)
        if exchange is None:
            body = f"no exchange at {path}; use /piexgo/ws or /cryptology/ws".encode()
            await request.reject(404, body=body)
            return
        ws = await request.accept()
        send, recv = trio.open_memory_channel[str](OUTBOX_SIZE)
        conn = _Conn(
            id=next(self._conn_ids),
            exchange=exchange,
            ws=ws,
            valve=valve,
            outbox=send,
            ready=not self.login_required,
        )
        self._world(exchange)
        self._conns[exchange].add(conn)
        self.connects_total += 1
        logger.info("simulator.connected exchange=%s conn=%s", exchange, conn.id)
        self._notify()
        try:
            with conn.scope:
                await self._session(conn, recv)
        finally:
            self._conns[exchange].discard(conn)
            self._notify()
            logger.info(
                "simulator.disconnected exchange=%s conn=%s code=%s abrupt=%s",
                exchange,
                conn.id,
                conn.close_code,
                conn.abrupt,
            )
            await self._close(conn)

    async def _close(self, conn: _Conn) -> None:
        if conn.abrupt or conn.valve.is_shut:
            await conn.valve.aclose()
            return
        with trio.move_on_after(CLOSE_TIMEOUT) as scope:
            scope.shield = True  # a clean close even while the server is being cancelled
            await conn.ws.aclose(conn.close_code, conn.close_reason)

    async def _session(self, conn: _Conn, recv: trio.MemoryReceiveChannel[str]) -> None:
        sender_done = trio.Event()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._sender, conn, recv, sender_done)
            if self.scenario.half_open_after is not None:
                nursery.start_soon(self._half_open_later, conn)
            await self._receiver(conn, sender_done)
            nursery.cancel_scope.cancel()

    async def _sender(
        self, conn: _Conn, recv: trio.MemoryReceiveChannel[str], done: trio.Event
    ) -> None:
        try:
            async with recv:
                async for text in recv:
                    if conn.valve.is_shut:
                        continue  # lost on the dead path
                    await conn.ws.send_message(text)
                    self.frames_sent[conn.exchange] += 1
        except ConnectionClosed:
            pass
        finally:
            done.set()

    async def _half_open_later(self, conn: _Conn) -> None:
        assert self.scenario.half_open_after is not None
        await trio.sleep(self.scenario.half_open_after)
        conn.valve.shut()
        logger.info("simulator.half_open exchange=%s conn=%s", conn.exchange, conn.id)
        self._notify()
        await trio.sleep(self.scenario.half_open_reap)
        if conn.valve.is_shut:  # still frozen: forget it silently, as keepalive would
            conn.abrupt = True
            conn.scope.cancel()

    async def _receiver(self, conn: _Conn, sender_done: trio.Event) -> None:
        parse = inbound.parse_piexgo if conn.exchange == "piexgo" else inbound.parse_cryptology
        while True:
            try:
                text = await conn.ws.get_message()
            except ConnectionClosed:
                return
            msg = parse(text)
            if isinstance(msg, inbound.Login):
                if not await self._login(conn, msg, sender_done):
                    return
            elif isinstance(msg, inbound.Rejected):
                logger.info("simulator.rejected conn=%s msg=%s", conn.id, msg.msg)
                self._enqueue(conn, [frames.piexgo_error(msg.op, msg.topic, msg.msg)])
            elif isinstance(msg, inbound.Subscription):
                self._subscription(conn, msg)
            else:
                logger.debug("simulator.ignored conn=%s why=%s", conn.id, msg.why)

    async def _login(self, conn: _Conn, msg: inbound.Login, sender_done: trio.Event) -> bool:
        """Answer a login; on failure flush the answer and end the session (1008)."""
        problem = inbound.check_login(msg, self.credentials)
        if self.scenario.reject_login:
            problem = "login rejected"
        if problem is None:
            conn.ready = True
            self._enqueue(conn, [frames.login_ok()])
            logger.info("simulator.login_ok conn=%s", conn.id)
            self._notify()
            return True
        logger.info("simulator.login_failed conn=%s why=%s", conn.id, problem)
        self._enqueue(conn, [frames.login_error(problem)])
        conn.close_code, conn.close_reason = 1008, "login failed"
        await conn.outbox.aclose()
        with trio.move_on_after(CLOSE_TIMEOUT):
            await sender_done.wait()
        return False

    def _subscription(self, conn: _Conn, msg: inbound.Subscription) -> None:
        if not conn.ready:
            self._enqueue(conn, [frames.piexgo_error(msg.op, msg.topic, "login required")])
            return
        if msg.op == "unsubscribe":
            conn.topics.discard(msg.topic)
            self._enqueue(conn, [frames.piexgo_ack(msg.op, msg.topic)])
        else:
            out = [frames.piexgo_ack(msg.op, msg.topic)]
            if msg.topic == "pinfo":
                # the snapshot tells a reconnecting client what moved while it was away
                snapshot = self._world("piexgo").balance_snapshot()
                out += [frames.piexgo_balance(b) for b in snapshot]
            # no checkpoint between the snapshot and joining the topic: nothing is missed
            self._enqueue(conn, out)
            conn.topics.add(msg.topic)
        logger.info("simulator.%s conn=%s topic=%s", msg.op, conn.id, msg.topic)
        self._notify()

    def _enqueue(self, conn: _Conn, texts: list[str]) -> None:
        for text in texts:
            try:
                conn.outbox.send_nowait(text)
            except trio.WouldBlock:
                # the client reads nothing and its outbox is full: treat it as dead
                logger.warning("simulator.outbox_full conn=%s", conn.id)
                conn.abrupt = True
                conn.scope.cancel()
                return
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                return

    # --- the world -------------------------------------------------------------------------

    def _world(self, exchange: str) -> Activity:
        """The exchange's world, created (and its activity started) on first use, so that the
        first client of a fresh simulator sees the seed's sequence from its beginning."""
        world = self._worlds.get(exchange)
        if world is None:
            epoch = time.time() if self._epoch is None else self._epoch
            world = Activity.for_exchange(exchange, seed=self.seed, start_us=int(epoch * 1e6))
            self._worlds[exchange] = world
            assert self._nursery is not None
            if self.scenario.activity:
                self._nursery.start_soon(self._activity_loop, exchange, world)
            elif self.flood_rate:
                self._nursery.start_soon(self._flood_loop, exchange, self.flood_rate)
        return world

    async def _activity_loop(self, exchange: str, world: Activity) -> None:
        # pacing has its own generator so that --rate changes timing, never content order
        pace = random.Random(f"alertd-simulator-pace:{exchange}:{self.seed}")
        garbage_every = self.scenario.garbage_every
        next_at, step, garbage_no = trio.current_time(), 0, 0
        sample = ""
        while True:
            dt = pace.uniform(self.scenario.step_min, self.scenario.step_max) * self._pace
            next_at += dt
            await trio.sleep_until(next_at)
            world.advance(int(dt * 1_000_000))
            for topic, text in self._render(exchange, world.step()):
                sample = text
                await self._broadcast(exchange, topic, text)
            step += 1
            if garbage_every and step % garbage_every == 0:
                kind = frames.GARBAGE_KINDS[garbage_no % len(frames.GARBAGE_KINDS)]
                garbage_no += 1
                logger.info("simulator.garbage exchange=%s kind=%s", exchange, kind)
                await self._broadcast(exchange, None, frames.garbage_frame(exchange, kind, sample))

    async def _flood_loop(self, exchange: str, rate: float) -> None:
        def someone_listens() -> bool:
            return any(
                c.ready and (c.topics or exchange == "cryptology") for c in self._live(exchange)
            )

        await self.wait_until(someone_listens)
        logger.info("simulator.flood exchange=%s rate=%s", exchange, rate)
        await self.flood(exchange, None, rate)

    def _render(self, exchange: str, facts: list[Fact]) -> list[tuple[str | None, str]]:
        out: list[tuple[str | None, str]] = []
        for fact in facts:
            if exchange == "piexgo":
                out += frames.piexgo_frames(fact, next(self._frame_no))
            else:
                out += [(None, f) for f in frames.cryptology_frames(fact)]
        return out

    async def _broadcast(self, exchange: str, topic: str | None, text: str) -> None:
        """Send to every ready, not frozen connection of ``exchange`` that wants ``topic``
        (None: any Piexgo connection with a subscription, every Cryptology connection)."""
        sent = False
        for c in list(self._conns[exchange]):
            if not c.ready or c.valve.is_shut:
                continue
            if exchange == "piexgo" and not (topic in c.topics or (topic is None and c.topics)):
                continue
            try:
                await c.outbox.send(text)
                sent = True
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                pass
        if not sent:
            await trio.lowlevel.checkpoint()

    # --- helpers ---------------------------------------------------------------------------

    def _exchanges(self, exchange: str | None) -> tuple[str, ...]:
        return EXCHANGES if exchange is None else (exchange,)

    def _live(self, exchange: str) -> list[_Conn]:
        return [c for c in self._conns[exchange] if not c.valve.is_shut]

    def _notify(self) -> None:
        self._changed.set()
        self._changed = trio.Event()

    async def wait_until(self, condition: Callable[[], bool]) -> None:
        """Wait until ``condition()`` holds; it is re-checked whenever connections, logins,
        subscriptions, half-open state or the listener change."""
        while not condition():
            await self._changed.wait()


async def serve(
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    scenario: str | Scenario = "normal",
    seed: int = 1,
    rate: float | None = None,
    credentials: Mapping[str, str] | None = None,
    epoch: float | None = None,
    task_status: trio.TaskStatus[Simulator] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Run the simulator until cancelled; ``task_status.started(sim)`` once listening.

    ``rate``: frames per second in the flood scenario, else ordinary actions per second.
    ``credentials``: key -> secret; when given, clients must log in first.
    ``epoch``: Unix time the worlds start at (default: now). Pin it to get byte-identical
    frames for a seed; otherwise only the timestamps differ between runs.
    """
    chosen = get_scenario(scenario) if isinstance(scenario, str) else scenario
    sim = Simulator(
        host=host,
        port=port,
        scenario=chosen,
        seed=seed,
        rate=rate,
        credentials=credentials,
        epoch=epoch,
    )
    await sim.run(task_status=task_status)
