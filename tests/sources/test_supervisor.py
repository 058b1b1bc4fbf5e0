"""Sources: one supervised session per account, reload by diff, prompt cancellation."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import attrs
import trio

from alertd.events import Event
from alertd.protocols import Decoder, decoder_for
from alertd.simulator import SCENARIOS, Simulator, serve
from alertd.sources import Sources

from .helpers import EventLog, account

STREAMS = {"pinfo", "dealinfo.btc_usdt", "depth.btc_usdt"}
QUIET = SCENARIOS["quiet"]


async def start_sim(nursery: trio.Nursery, **kw: Any) -> Simulator:
    async def run(*, task_status: trio.TaskStatus[Simulator]) -> None:
        await serve(task_status=task_status, **({"scenario": QUIET} | kw))

    sim: Simulator = await nursery.start(run)
    return sim


def watch(nursery: trio.Nursery) -> tuple[trio.MemorySendChannel[Event], EventLog]:
    send, receive = trio.open_memory_channel[Event](100)
    log = EventLog()
    nursery.start_soon(log.consume, receive)
    return send, log


async def test_cancellation_is_prompt_even_with_half_open_peers() -> None:
    """Cancelling Sources with one connection half-open and one attempt stuck in a frozen
    handshake returns at once, with every account marked down."""
    with trio.fail_after(10):
        async with trio.open_nursery() as outer:
            sim = await start_sim(outer)
            send, log = watch(outer)
            slow = dict(close_timeout=5.0, connect_timeout=5.0, ping_interval=0)
            sources = Sources(
                [
                    account(sim.url("piexgo"), name="a", **slow),
                    account(sim.url("cryptology"), name="b", exchange="cryptology", streams=[]),
                ],
                send,
            )
            async with trio.open_nursery() as inner:
                await inner.start(sources.run)
                await sim.wait_subscribed("piexgo", STREAMS)
                await log.wait_for("stream.connected", 2)
                sim.go_half_open("piexgo")
                sim.go_half_open("cryptology", include_new=True)
                sim.drop_connections("cryptology", abrupt=True)
                await log.wait_for("stream.disconnected", account="b")
                await trio.sleep(0.1)  # b is now stuck in a handshake that never completes
                started = trio.current_time()
                inner.cancel_scope.cancel()
            elapsed = trio.current_time() - started
            outer.cancel_scope.cancel()
    assert elapsed < 0.5
    assert not sources.stats["a"].connected and not sources.stats["b"].connected


async def test_update_restarts_only_changed_accounts() -> None:
    """A reload restarts an account whose settings changed, stops a removed one, starts a
    new one, and leaves an unchanged one connected."""
    with trio.fail_after(10):
        async with trio.open_nursery() as outer:
            sim = await start_sim(outer)
            send, log = watch(outer)
            keep = account(sim.url("piexgo"), name="keep")
            change = account(sim.url("piexgo"), name="change")
            drop = account(sim.url("piexgo"), name="drop")
            sources = Sources([keep, change, drop], send)
            async with trio.open_nursery() as inner:
                await inner.start(sources.run)
                await sim.wait_connected("piexgo", 3)
                await log.wait_for("stream.connected", 3)
                before = sim.connects_total
                changed = attrs.evolve(change, streams=["pinfo"])
                new = account(sim.url("cryptology"), name="new", exchange="cryptology", streams=[])
                await sources.update([keep, changed, new])
                await log.wait_for("stream.connected", 2, account="change")
                await log.wait_for("stream.connected", account="new")
                await sim.wait_until(lambda: sim.connection_count("piexgo") == 2)
                connected = {name: s.connected for name, s in sources.stats.items()}
                connects = sim.connects_total - before
                inner.cancel_scope.cancel()
            outer.cancel_scope.cancel()
    assert connects == 2  # the changed account and the new one, nothing else
    assert connected == {"keep": True, "change": True, "new": True}
    assert len(log.of("stream.connected")) == 3 + 2
    assert [e.account for e in log.of("stream.disconnected")] == []  # a stop is not an outage


async def test_disabled_account_is_not_started() -> None:
    """An account with enabled = false gets no session and no stats."""
    with trio.fail_after(5):
        async with trio.open_nursery() as outer:
            sim = await start_sim(outer)
            send, log = watch(outer)
            sources = Sources(
                [
                    account(sim.url("piexgo"), name="on"),
                    account(sim.url("piexgo"), name="off", enabled=False),
                ],
                send,
            )
            async with trio.open_nursery() as inner:
                await inner.start(sources.run)
                await log.wait_for("stream.connected")
                await trio.sleep(0.1)
                count = sim.connection_count("piexgo")
                inner.cancel_scope.cancel()
            outer.cancel_scope.cancel()
    assert count == 1
    assert set(sources.stats) == {"on"}


@attrs.define
class BuggyDecoder:
    """Wraps a real decoder; its first decode raises a bug (not a ProtocolError)."""

    inner: Decoder
    bugs: list[int]

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def decode(self, frame: str | bytes, received: datetime) -> list[Event]:
        if not self.bugs:
            self.bugs.append(1)
            raise RuntimeError("boom")
        return self.inner.decode(frame, received)


async def test_a_crashing_session_is_reported_and_restarted() -> None:
    """A bug in one account's session is a stream.error and the session starts again."""
    bugs: list[int] = []

    def factory(exchange: str, name: str) -> Decoder:
        return BuggyDecoder(decoder_for(exchange, name), bugs)  # type: ignore[return-value]

    with trio.fail_after(10):
        async with trio.open_nursery() as outer:
            sim = await start_sim(outer)
            send, log = watch(outer)
            sources = Sources([account(sim.url("piexgo"))], send, decoder_factory=factory)
            async with trio.open_nursery() as inner:
                await inner.start(sources.run)
                [error] = await log.wait_for("stream.error")
                await log.wait_for("stream.connected", 2)
                await sim.wait_subscribed("piexgo", STREAMS)
                inner.cancel_scope.cancel()
            outer.cancel_scope.cancel()
    assert error.reason.startswith("internal error in the session: ")
    assert "RuntimeError: boom" in error.reason


async def test_config_error_is_reported_once_and_not_retried() -> None:
    """An account whose settings cannot work is one stream.error and no connection attempt."""
    with trio.fail_after(5):
        async with trio.open_nursery() as outer:
            send, log = watch(outer)
            bad = account("ws://127.0.0.1:1/ws", streams=["pinfo", "klines.btc_usdt"])
            sources = Sources([bad], send)
            async with trio.open_nursery() as inner:
                await inner.start(sources.run)
                [error] = await log.wait_for("stream.error")
                await trio.sleep(0.2)
                inner.cancel_scope.cancel()
            outer.cancel_scope.cancel()
    assert "unknown piexgo stream 'klines.btc_usdt'" in error.reason
    assert len(log.of("stream.error")) == 1
    assert log.of("stream.disconnected") == []
