"""Piexgo over a real websocket: subscriptions, errors, snapshots and frames as documented."""

from __future__ import annotations

import json
from decimal import Decimal
from itertools import pairwise
from typing import Any

import trio

from alertd.simulator.activity import MAX_OPEN_ORDERS

from .doc_examples import (
    PIEXGO_BALANCE,
    PIEXGO_DEALINFO,
    PIEXGO_DEPTH,
    PIEXGO_ORDER,
    shape,
)
from .helpers import client, collect, recv, running, subscribe

FAST = 500.0  # actions per second: real time, many frames, short tests
ALL_TOPICS = ("pinfo", "dealinfo.btc_usdt", "dealinfo.eth_usdt", "depth.btc_usdt", "depth.eth_usdt")


async def test_only_subscribed_topics_are_streamed() -> None:
    """A dealinfo.btc_usdt subscriber is acknowledged, then gets btc_usdt deals and nothing else."""
    with trio.fail_after(20):
        async with running(seed=3, rate=FAST) as sim, client(sim.url("piexgo")) as ws:
            seen = await subscribe(ws, "dealinfo.btc_usdt")
            assert seen == [{"op": "subscribe", "topic": "dealinfo.btc_usdt", "status": "ok"}]
            assert sim.subscriptions("piexgo") == {"dealinfo.btc_usdt"}
            frames = [json.loads(f) for f in await collect(ws, 10)]
            assert {(f["topic"], f["symbol"]) for f in frames} == {("dealinfo", "btc_usdt")}


async def test_unsubscribe_stops_a_topic() -> None:
    """After an acknowledged unsubscribe of depth.btc_usdt only the other topic keeps coming."""
    with trio.fail_after(20):
        async with running(seed=3, rate=FAST) as sim, client(sim.url("piexgo")) as ws:
            await subscribe(ws, "depth.btc_usdt", "dealinfo.btc_usdt")
            await subscribe(ws, "depth.btc_usdt", op="unsubscribe")
            assert sim.subscriptions("piexgo") == {"dealinfo.btc_usdt"}
            frames = [json.loads(f) for f in await collect(ws, 8)]
            assert {f["topic"] for f in frames} == {"dealinfo"}


async def test_bad_frames_are_answered_with_errors_and_the_connection_stays() -> None:
    """Uppercase symbols, unknown topics and ops, and non-JSON get an error frame; then a
    good subscribe on the same connection is still acknowledged."""
    bad: list[tuple[str, str | None, str]] = [
        ('{"op":"subscribe","topic":"depth.BTC_USDT"}', "depth.BTC_USDT", "lowercase"),
        ('{"op":"subscribe","topic":"kline.btc_usdt"}', "kline.btc_usdt", "unknown topic"),
        ('{"op":"subscribe","topic":"depth.doge_usdt"}', "depth.doge_usdt", "unknown symbol"),
        ('{"op":"subcribe","topic":"pinfo"}', "pinfo", "unknown op"),
        ('{"op":"subscribe"}', None, "missing topic"),
        ("subscribe pinfo", None, "not JSON"),
    ]
    with trio.fail_after(10):
        async with running(scenario="quiet") as sim, client(sim.url("piexgo")) as ws:
            for text, topic, why in bad:
                await ws.send_message(text)
                answer = await recv(ws)
                assert answer["op"] == "subscribe"
                assert answer["status"] == "error"
                assert answer["topic"] == topic
                assert why in answer["msg"]
            assert await subscribe(ws, "depth.btc_usdt") == [
                {"op": "subscribe", "topic": "depth.btc_usdt", "status": "ok"}
            ]
            assert sim.connection_count("piexgo") == 1


async def test_pinfo_subscribe_sends_a_balance_snapshot_showing_what_moved(
    clock: trio.abc.Clock,
) -> None:
    """A pinfo subscribe is followed by one balance per token; after a reconnect the snapshot
    carries the balances that moved while the client was away."""
    with trio.fail_after(300):
        async with running(seed=5) as sim:
            async with client(sim.url("piexgo")) as ws:
                first = await subscribe(ws, "pinfo")
                snapshot = [await recv(ws) for _ in range(3)]
            assert first == [{"op": "subscribe", "topic": "pinfo", "status": "ok"}]
            tokens = {f["data"]["token"]: f["data"] for f in snapshot}
            assert set(tokens) == {"BTC", "ETH", "USDT"}
            assert all(f["type"] == "balance" for f in snapshot)
            await trio.sleep(15)  # the account keeps trading while nobody watches
            async with client(sim.url("piexgo")) as ws:
                await subscribe(ws, "pinfo")
                later = {f["data"]["token"]: f["data"] for f in [await recv(ws) for _ in range(3)]}
            moved = [t for t in tokens if later[t]["id"] != tokens[t]["id"]]
            assert moved, "15 s of activity moved no balance"
            assert all(later[t]["value"] != tokens[t]["value"] for t in moved)


def _frames_by_kind(frames: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    kinds: dict[str, list[dict[str, Any]]] = {}
    for f in frames:
        kind = f["topic"] if f["topic"] != "pinfo" else f"pinfo.{f['type']}"
        kinds.setdefault(kind, []).append(f)
    return kinds


async def _gather_everything(seed: int, count: int) -> list[dict[str, Any]]:
    """Every data frame after subscribing to everything, including those that arrived while
    the later acks were awaited (at this pace, under load, an order can be placed then)."""
    async with running(seed=seed, rate=FAST) as sim, client(sim.url("piexgo")) as ws:
        early = [f for f in await subscribe(ws, *ALL_TOPICS) if "op" not in f]
        return early + [json.loads(f) for f in await collect(ws, count)]


async def test_frames_have_the_documented_shapes() -> None:
    """Order, balance, dealinfo and depth frames have exactly the keys and JSON types of the
    document's examples."""
    with trio.fail_after(30):
        kinds = _frames_by_kind(await _gather_everything(seed=1, count=300))
    assert set(kinds) == {"pinfo.order", "pinfo.balance", "dealinfo", "depth"}
    for f in kinds["pinfo.order"]:
        assert shape(f) == shape(PIEXGO_ORDER)
        assert f["data"]["type"] in ("buy", "sell")
        assert f["data"]["market"] in ("BTC_USDT", "ETH_USDT")
        assert f["data"]["status"] in (0, 2, 4)
        assert len(str(f["data"]["timestamp"])) == 10  # seconds, like the example
    for f in kinds["pinfo.balance"]:
        assert shape(f) == shape(PIEXGO_BALANCE)
    for f in kinds["dealinfo"]:
        assert shape(f) == shape(PIEXGO_DEALINFO)
        assert all(d["direct"] in (0, 1) and len(str(d["time"])) == 13 for d in f["deals"])
    for f in kinds["depth"]:
        assert shape(f) == shape(PIEXGO_DEPTH)
        assert [lvl["index"] for lvl in f["buy_book"]] == list(range(len(f["buy_book"])))
        bids = [lvl["price"] for lvl in f["buy_book"]]
        asks = [lvl["price"] for lvl in f["sell_book"]]
        assert bids == sorted(bids, reverse=True)
        assert asks == sorted(asks)
        assert bids[0] < asks[0]
    for symbol in ("btc_usdt", "eth_usdt"):
        ids = [f["change_id"] for f in kinds["depth"] if f["symbol"] == symbol]
        assert ids == sorted(ids) and len(set(ids)) == len(ids)


async def test_orders_go_through_their_whole_lifecycle() -> None:
    """Orders are placed, partially filled (remain goes down, status 0), filled (status 2,
    remain 0, amount = executed value) and cancelled (status 4), each id consistently."""
    with trio.fail_after(30):
        frames = await _gather_everything(seed=2, count=400)
    orders: dict[str, list[dict[str, Any]]] = {}
    for f in frames:
        if f["topic"] == "pinfo" and f["type"] == "order":
            orders.setdefault(f["data"]["order_id"], []).append(f["data"])

    # The world trades from the moment the client connects, so an order may have been placed
    # before pinfo was subscribed. Only such orders may be met mid-life, and they are older
    # (smaller ids: ids only grow) than every order seen placed.
    def was_placed(first: dict[str, Any]) -> bool:
        return first["status"] == 0 and first["remain"] == first["volume"]

    placed = {i for i, history in orders.items() if was_placed(history[0])}
    joined = set(orders) - placed
    assert placed and len(joined) <= MAX_OPEN_ORDERS
    assert all(int(i) < min(map(int, placed)) for i in joined), (joined, placed)
    seen = {"placed": 0, "partial": 0, "filled": 0, "cancelled": 0}
    for order_id, history in orders.items():
        remains = [Decimal(d["remain"]) for d in history]
        assert remains == sorted(remains, reverse=True)
        assert all(d["status"] == 0 for d in history[:-1])
        if order_id in placed:
            seen["placed"] += 1
            assert Decimal(history[0]["amount"]) == 0
        for prev, d in pairwise(history):
            if d["status"] == 0:
                seen["partial"] += 1
                assert Decimal(d["remain"]) < Decimal(prev["remain"])
        last = history[-1]
        if last["status"] == 2:
            seen["filled"] += 1
            assert Decimal(last["remain"]) == 0
            executed = Decimal(last["volume"]) * Decimal(last["price"])
            assert abs(Decimal(last["amount"]) - executed) < executed / 1000
        elif last["status"] == 4:
            seen["cancelled"] += 1
        assert len({d["id"] for d in history}) == len(history)
    assert all(n > 0 for n in seen.values()), seen
