"""Sources: one supervised session per account, reload by diff, prompt cancellation."""

from __future__ import annotations

import json
from datetime import datetime
from decimal import Decimal
from typing import Any

import attrs
import trio

from alertd.events import BalanceEvidence, Event
from alertd.protocols import Decoder, decoder_for
from alertd.simulator import SCENARIOS, Simulator, serve
from alertd.sources import Sources

from .helpers import EventLog, FakePiexgo, account, until

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
    assert (
        not sources.statistics().accounts["a"].connected
        and not sources.statistics().accounts["b"].connected
    )


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
                connected = {name: s.connected for name, s in sources.statistics().accounts.items()}
                connects = sim.connects_total - before
                inner.cancel_scope.cancel()
            outer.cancel_scope.cancel()
    assert connects == 2  # the changed account and the new one, nothing else
    assert connected == {"keep": True, "change": True, "new": True}
    assert len(log.of("stream.connected")) == 3 + 2
    # a restart is reported like any reconnect; a removed account's stop is not an outage
    assert [e.account for e in log.of("stream.disconnected")] == ["change"]


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
    assert set(sources.statistics().accounts) == {"on"}


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
    """A bug in one account's session is a stream.error and the session starts again; the
    restart is reported like a reconnect, with the gap it left."""
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
                [gap] = await log.wait_for("stream.gap")
                inner.cancel_scope.cancel()
            outer.cancel_scope.cancel()
    assert error.reason.startswith("internal error in the session: ")
    assert "RuntimeError: boom" in error.reason
    [down] = log.of("stream.disconnected")
    assert down.reason == "session restarted after an internal error"
    assert gap.since <= down.time


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


def order_frame(remain: str) -> str:
    data = {
        "order_price": "100",
        "price": "0",
        "stop": "0",
        "market_price": "0",
        "volume": "10",
        "remain": remain,
        "amount": "0",
        "type": "buy",
        "timestamp": 1559734776,
        "order_id": "42",
        "market": "BTC_USDT",
        "status": 0,
        "flag": 0,
        "id": 1,
    }
    return json.dumps({"topic": "pinfo", "type": "order", "data": data})


async def test_reloaded_account_keeps_what_it_knew_and_reports_the_window(
    fake_piexgo: FakePiexgo, event_channel: tuple
) -> None:
    """Restarting an account for changed settings keeps its orders and balances (no second
    order.placed, fills and balance changes counted from before) and reports the restart as
    disconnected, connected and an offline gap with the balances that moved."""
    send, log = event_channel
    acct = account(fake_piexgo.url, streams=["pinfo"])
    with trio.fail_after(10):
        async with trio.open_nursery() as inner:
            sources = Sources([acct], send)
            await inner.start(sources.run)
            await log.wait_for("balance.changed", 2)
            await fake_piexgo.send(order_frame("10"))
            await fake_piexgo.send(order_frame("5"))
            await log.wait_for("order.partially_filled")
            mark = len(log.events)
            fake_piexgo.balances = {"BTC": "1.5", "USDT": "750"}
            await sources.update([attrs.evolve(acct, ping_interval=0.25)])
            await log.wait_for("stream.gap")
            await fake_piexgo.send(order_frame("3"))
            await log.wait_for("order.partially_filled", 2)
            inner.cancel_scope.cancel()
    after = log.events[mark:]
    assert [e.kind for e in after if e.kind.startswith("stream.")] == [
        "stream.disconnected",
        "stream.connected",
        "stream.gap",
    ]
    down, up, gap = (e for e in after if e.kind.startswith("stream."))
    assert "reload" in down.reason
    assert up.downtime is not None
    assert gap.why == "offline" and gap.since <= down.time and gap.until >= up.time
    assert gap.evidence == (
        BalanceEvidence(currency="USDT", before=Decimal(1000), after=Decimal(750)),
    )
    assert len(log.of("order.placed")) == 1
    fill = log.of("order.partially_filled")[1]
    assert (fill.filled, fill.last_filled, fill.remaining) == (Decimal(7), Decimal(2), Decimal(3))
    [moved] = [e for e in after if e.kind == "balance.changed"]
    assert (moved.currency, moved.change) == ("USDT", Decimal(-250))


async def test_events_waiting_at_a_reload_are_delivered_after_it(
    nursery: trio.Nursery, fake_piexgo: FakePiexgo
) -> None:
    """Events decoded but not yet taken by a slow consumer when the account restarts for a
    reload (one of them mid-send) reach the consumer afterwards, in order."""
    send, receive = trio.open_memory_channel[Event](0)
    log = EventLog()
    acct = account(fake_piexgo.url, streams=["pinfo"])
    sources = Sources([acct], send)
    with trio.fail_after(10):
        await nursery.start(sources.run)
        await fake_piexgo.wait(lambda: fake_piexgo.subscribed(["pinfo"]))
        await fake_piexgo.send(order_frame("10"))
        await fake_piexgo.send(order_frame("5"))
        await until(
            lambda: sources.statistics().accounts["main"].frames >= 5
        )  # ack, 2 balances, 2 orders
        await sources.update([attrs.evolve(acct, ping_interval=0.25)])
        nursery.start_soon(log.consume, receive)
        await log.wait_for("stream.gap")
    assert log.kinds() == [
        "stream.connected",
        "balance.changed",
        "balance.changed",
        "order.placed",
        "order.partially_filled",
        "stream.disconnected",
        "stream.connected",
        "stream.gap",
    ]


async def test_statistics_follow_an_account_through_an_exchange_change_and_removal() -> None:
    """An account moved to another exchange keeps counting from where it was (metrics take
    the counters as ever growing); a removed account leaves the statistics."""
    with trio.fail_after(10):
        async with trio.open_nursery() as outer:
            sim = await start_sim(outer)
            send, log = watch(outer)
            acct = account(sim.url("piexgo"), name="moving")
            sources = Sources([acct], send)
            async with trio.open_nursery() as inner:
                await inner.start(sources.run)
                await log.wait_for("stream.connected", account="moving")
                await until(lambda: sources.statistics().accounts["moving"].frames >= 3)
                before = sources.statistics().accounts["moving"]
                moved = attrs.evolve(
                    acct, exchange="cryptology", url=sim.url("cryptology"), streams=[]
                )
                await sources.update([moved])
                await log.wait_for("stream.connected", 2, account="moving")
                await until(lambda: sources.statistics().accounts["moving"].connected)
                after = sources.statistics().accounts["moving"]
                await sources.update([])
                gone = sources.statistics().accounts
                inner.cancel_scope.cancel()
            outer.cancel_scope.cancel()
    assert before.connected and before.connected_since is not None
    assert after.frames >= before.frames and after.decode_errors >= before.decode_errors
    assert gone == {}
    assert log.of("stream.connected")[-1].exchange == "cryptology"
