"""Sources against the exchange simulator on 127.0.0.1: every misbehaviour ends in the
expected stream.* events and a recovered stream with all its subscriptions back.

Real time with short intervals: the scenarios are sped up with ``attrs.evolve``."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from decimal import Decimal
from functools import partial
from typing import Any

import attrs
import trio

from alertd.config.model import AccountSettings, AuthSettings, Duration, Secret
from alertd.events import Event
from alertd.simulator import SCENARIOS, Scenario, Simulator, serve
from alertd.sources import Sources

from .helpers import EventLog, account

PIEXGO_STREAMS = ["pinfo", "dealinfo.btc_usdt", "depth.btc_usdt"]
LOGIN = (
    '{"op":"login","key":"{{ api_key }}","ts":{{ timestamp }},'
    '"sign":"{{ hmac_sha256(api_secret, timestamp) }}"}'
)
FAST = {"step_min": 0.01, "step_max": 0.03}  # activity about 50 steps a second


def scenario(name: str, **kw: Any) -> Scenario:
    return attrs.evolve(SCENARIOS[name], **(FAST | kw))


@asynccontextmanager
async def running(
    sim_scenario: Scenario,
    accounts: list[AccountSettings] | None = None,
    **serve_kw: Any,
) -> AsyncIterator[tuple[Simulator, Sources, EventLog]]:
    """The simulator, and Sources watching it (one Piexgo account unless told otherwise).
    Account URLs say ``SIM`` for the simulator's address. On exit the sources stop first, as
    in the daemon, so the simulator's close handshakes find a peer that answers."""
    async with trio.open_nursery() as sim_nursery:
        sim: Simulator = await sim_nursery.start(partial(serve, scenario=sim_scenario, **serve_kw))
        if accounts is None:
            accounts = [account("ws://SIM/piexgo/ws")]
        here = f"127.0.0.1:{sim.port}"
        accounts = [attrs.evolve(a, url=a.url.replace("SIM", here)) for a in accounts]
        send, receive = trio.open_memory_channel[Event](1000)
        log = EventLog()
        sources = Sources(accounts, send)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(log.consume, receive)
            await nursery.start(sources.run)
            yield sim, sources, log
            nursery.cancel_scope.cancel()
        sim_nursery.cancel_scope.cancel()


async def test_normal_both_exchanges_flow() -> None:
    """Both exchanges connect, Piexgo has every stream subscribed, events of both arrive."""
    accounts = [
        account("ws://SIM/piexgo/ws", name="px"),
        account(
            "ws://SIM/cryptology/ws",
            name="cr",
            exchange="cryptology",
            streams=["account", "trades.BTC_USD", "book.BTC_USD"],
        ),
    ]
    with trio.fail_after(10):
        async with running(scenario("normal"), accounts) as (sim, sources, log):
            await sim.wait_subscribed("piexgo", PIEXGO_STREAMS)
            subscribed = sim.subscriptions("piexgo")
            await log.wait_for("stream.connected", account="px")
            await log.wait_for("stream.connected", account="cr")
            await log.wait_for("trade", account="px")
            await log.wait_for("trade", account="cr")
            await log.wait_for("book", account="cr")
            connected = {
                name: stats.connected for name, stats in sources.statistics().accounts.items()
            }
    assert subscribed == set(PIEXGO_STREAMS)
    assert connected == {"px": True, "cr": True}
    assert (
        sources.statistics().accounts["px"].frames > 0
        and sources.statistics().accounts["px"].decode_errors == 0
    )
    assert sources.statistics().accounts["cr"].decode_errors == 0
    assert log.of("stream.error") == []
    # Cryptology's configured streams filter what it pushes
    assert {e.symbol for e in log.of("trade") if e.account == "cr"} == {"BTC_USD"}


async def test_drop_reconnects_with_every_subscription() -> None:
    """Drops (a 1011 close frame, then a bare TCP close) are each a stream.disconnected with
    its reason, then stream.connected, an offline stream.gap, and all streams resubscribed."""
    with trio.fail_after(10):
        async with running(scenario("drop", drop_every=0.6)) as (sim, sources, log):
            await log.wait_for("stream.gap", 2)
            await log.wait_for("stream.connected", 3)
            await sim.wait_subscribed("piexgo", PIEXGO_STREAMS)
            subscribed = sim.subscriptions("piexgo")
    reasons = [e.reason for e in log.of("stream.disconnected")]
    assert reasons[0] == "closed with 1011 INTERNAL_ERROR: simulated drop"
    assert reasons[1] == "closed with 1006 ABNORMAL_CLOSURE"
    ups = log.of("stream.connected")
    assert ups[0].downtime is None and all(u.downtime >= 0 for u in ups[1:])
    gaps = log.of("stream.gap")
    assert all(g.why == "offline" and g.since <= g.until for g in gaps)
    assert subscribed == set(PIEXGO_STREAMS)
    assert sources.statistics().accounts["main"].reconnects >= 2


async def test_half_open_is_detected_by_the_heartbeat() -> None:
    """A connection that stops sending and answering pings is dropped after ping_timeout and
    replaced by a new one with every stream."""
    with trio.fail_after(10):
        async with running(scenario("half-open", half_open_after=0.4)) as (sim, _, log):
            [down] = await log.wait_for("stream.disconnected")
            await log.wait_for("stream.connected", 2)
            await sim.wait_subscribed("piexgo", PIEXGO_STREAMS)
            subscribed = sim.subscriptions("piexgo")
            [gap] = await log.wait_for("stream.gap")
    assert down.reason == "no pong within 0.3s (connection half-open)"
    assert subscribed == set(PIEXGO_STREAMS)
    assert gap.why == "offline"


async def test_half_open_gap_starts_at_the_last_frame_received() -> None:
    """After a half-open connection the gap starts when the last frame arrived, not when the
    heartbeat noticed (up to ping_interval + ping_timeout later)."""
    with trio.fail_after(10):
        async with running(scenario("half-open", half_open_after=0.4)) as (_, _, log):
            [gap] = await log.wait_for("stream.gap")
    down = log.kinds().index("stream.disconnected")
    before = [e for e in log.events[:down] if not e.kind.startswith("stream.")]
    assert before, "no frame arrived before the connection froze"
    assert gap.since == max(e.received for e in before)


async def test_garbage_is_reported_and_the_stream_goes_on() -> None:
    """Malformed, unknown and not-an-object frames are stream.errors on a live stream; an
    oversize frame is a stream.error and a reconnect (trio-websocket closes with 1009)."""
    acct = account("ws://SIM/piexgo/ws", max_message_size=65_536)
    with trio.fail_after(10):
        async with running(scenario("garbage", garbage_every=1), [acct]) as (sim, sources, log):
            await log.wait_for("stream.error", 6)
            await log.wait_for("stream.connected", 2)
            await sim.wait_subscribed("piexgo", PIEXGO_STREAMS)
            subscribed = sim.subscriptions("piexgo")
            await log.wait_for("trade", len(log.of("trade")) + 1)  # still flowing
    errors = log.of("stream.error")
    oversize = [e for e in errors if "max_message_size (65536 bytes)" in e.reason]
    assert oversize, [e.reason for e in errors]
    assert any(e.excerpt for e in errors)  # bad frames are shown in part
    assert all(len(e.excerpt) < 300 for e in errors)
    assert sources.statistics().accounts["main"].decode_errors >= len(errors)
    assert log.of("stream.disconnected")[0].reason == "frame too big (1009)"
    assert subscribed == set(PIEXGO_STREAMS)


async def test_rejected_login_is_heard_and_backs_off() -> None:
    """Every rejected login is a stream.error; the stream never claims to be connected, and
    reconnects are spaced by the backoff rather than a hot loop."""
    auth = AuthSettings(api_key=Secret("KEY"), api_secret=Secret("SECRET"), login_frame=LOGIN)
    acct = account(
        "ws://SIM/piexgo/ws",
        auth=auth,
        backoff_initial=Duration(0.05),
        backoff_max=Duration(0.2),
    )
    with trio.fail_after(10):
        async with running(scenario("reject-login"), [acct]) as (sim, sources, log):
            await log.wait_for("stream.error", 3)
            await trio.sleep(1.0)
    errors = log.of("stream.error")
    assert {e.reason for e in errors} == {"login rejected by the server"}
    assert '"login rejected"' in errors[0].excerpt
    assert log.of("stream.connected") == []
    assert [e.reason for e in log.of("stream.disconnected")] == ["login rejected"]
    # a hot loop would reconnect hundreds of times a second; the cap of 0.2 s bounds it
    assert 3 <= sim.connects_total <= 40
    assert not sources.statistics().accounts["main"].connected
    assert "SECRET" not in repr(log.events)


async def test_login_with_credentials_then_subscribe() -> None:
    """With credentials required, the signed login frame is accepted and streams follow."""
    auth = AuthSettings(api_key=Secret("KEY"), api_secret=Secret("SECRET"), login_frame=LOGIN)
    acct = account("ws://SIM/piexgo/ws", auth=auth)
    with trio.fail_after(10):
        creds = {"KEY": "SECRET"}
        async with running(scenario("normal"), [acct], credentials=creds) as (sim, _, log):
            await sim.wait_subscribed("piexgo", PIEXGO_STREAMS)
            subscribed = sim.subscriptions("piexgo")
            await log.wait_for("stream.connected")
            await log.wait_for("trade")
    assert log.of("stream.error") == []
    assert subscribed == set(PIEXGO_STREAMS)


async def test_restart_is_a_gap_spanning_the_outage() -> None:
    """A server restart (1012, then refused connections) gives one stream.disconnected, quiet
    retries, and stream.connected with the downtime; the gap spans the outage."""
    with trio.fail_after(10):
        restart = scenario("restart", restart_every=0.5, restart_down=0.4)
        async with running(restart) as (sim, sources, log):
            await log.wait_for("stream.gap")
            await sim.wait_subscribed("piexgo", PIEXGO_STREAMS)
            subscribed = sim.subscriptions("piexgo")
    [down] = log.of("stream.disconnected")[:1]
    assert down.reason.startswith("closed with 1012")
    up = log.of("stream.connected")[1]
    assert up.downtime >= 0.3
    gap = log.of("stream.gap")[0]
    assert (gap.until - gap.since).total_seconds() >= 0.3
    assert sources.statistics().accounts["main"].reconnects >= 2  # refused attempts retried quietly
    assert len(log.of("stream.disconnected")) == 1
    assert subscribed == set(PIEXGO_STREAMS)


async def test_quiet_market_streams_go_stale() -> None:
    """With no traffic, each market stream is stale once; the account stream never is."""
    acct = account("ws://SIM/piexgo/ws", market_stale_after=Duration(0.3))
    with trio.fail_after(10):
        async with running(scenario("quiet"), [acct]) as (sim, _, log):
            await log.wait_for("stream.stale", 2)
            await trio.sleep(0.5)
            subscribed = sim.subscriptions("piexgo")
    stale = log.of("stream.stale")
    assert sorted(e.stream for e in stale) == ["dealinfo.btc_usdt", "depth.btc_usdt"]
    assert all(e.silent_for >= 0.3 for e in stale)
    assert subscribed == set(PIEXGO_STREAMS)


async def test_gap_evidence_matches_balances_before_and_after() -> None:
    """After an outage with activity going on, the gap's evidence holds, per currency that
    moved, the last balance seen before the outage and the snapshot's balance after it."""
    with trio.fail_after(10):
        async with running(scenario("normal")) as (sim, _, log):
            await log.wait_for("balance.changed", 10)
            sim.refuse_for(0.5)
            [gap] = await log.wait_for("stream.gap")
    events = log.events
    down = events.index(log.of("stream.disconnected")[0])
    up = events.index(log.of("stream.connected")[1])
    last_before: dict[str, Decimal] = {}
    for e in events[:down]:
        if e.kind == "balance.changed":
            last_before[e.currency] = e.balance
    first_after: dict[str, Decimal] = {}
    for e in events[up:]:
        if e.kind == "balance.changed":
            first_after.setdefault(e.currency, e.balance)
    assert gap.evidence, "50 activity steps a second should move some balance in 0.5 s"
    for ev in gap.evidence:
        assert ev.before == last_before.get(ev.currency)
        assert ev.after == first_after[ev.currency]
        assert ev.change == (None if ev.before is None else ev.after - ev.before)
