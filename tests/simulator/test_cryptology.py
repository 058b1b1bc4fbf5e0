"""Cryptology over a real websocket: everything pushed without subscription, as documented."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import trio

from .doc_examples import CRYPTOLOGY, shape
from .helpers import client, collect, running

FAST = 500.0


async def _frames(seed: int, count: int) -> list[dict[str, Any]]:
    async with (
        running(seed=seed, rate=FAST) as sim,
        client(sim.url("cryptology")) as ws,
    ):
        return [json.loads(f) for f in await collect(ws, count)]


def _generic(type_: str) -> str:
    return type_.removeprefix("Buy").removeprefix("Sell")


async def test_every_documented_message_arrives_in_its_documented_shape() -> None:
    """Without subscribing, a client gets every message type of the document, each with
    exactly the example's keys and JSON types (time as [seconds, microseconds])."""
    with trio.fail_after(30):
        frames = await _frames(seed=1, count=600)
    types = {f["@type"] for f in frames}
    for side in ("Buy", "Sell"):
        for kind in ("Placed", "AmountChanged", "Cancelled", "Closed"):
            assert f"{side}Order{kind}" in types
    assert {"SetBalance", "InsufficientFunds", "OrderBookAgg", "AnonymousTrade"} <= types
    for f in frames:
        example = CRYPTOLOGY[_generic(f["@type"])]
        assert list(f) == list(example), f  # same keys, in the document's order
        if f["@type"] == "OrderBookAgg":
            for levels in (f["buy_levels"], f["sell_levels"]):
                assert all(Decimal(p) > 0 and Decimal(v) > 0 for p, v in levels.items())
            continue
        assert shape(f) == shape(example), f
        if "time" in f:
            seconds, micros = f["time"]
            assert seconds > 1_600_000_000 and 0 <= micros < 1_000_000
        assert f.get("trade_pair", "BTC_USD") in ("BTC_USD", "ETH_USD")
    assert any(f.get("closed_inline") is True for f in frames)
    assert any(f.get("closed_inline") is False for f in frames)


async def test_order_amounts_and_balances_stay_consistent() -> None:
    """AmountChanged carries the new, smaller remaining amount, and every SetBalance's change
    is the difference from the previous balance of that currency."""
    with trio.fail_after(30):
        frames = await _frames(seed=4, count=600)
    remaining: dict[int, Decimal] = {}
    balances: dict[str, Decimal] = {}
    for f in frames:
        t = _generic(f["@type"])
        if t == "OrderPlaced" and not f["closed_inline"]:
            remaining[f["order_id"]] = Decimal(f["amount"])
        elif t == "OrderAmountChanged" and f["order_id"] in remaining:
            assert 0 < Decimal(f["amount"]) < remaining[f["order_id"]]
            remaining[f["order_id"]] = Decimal(f["amount"])
        elif t == "SetBalance":
            new, change = Decimal(f["balance"]), Decimal(f["change"])
            if f["currency"] in balances:
                assert balances[f["currency"]] + change == new
            assert new >= 0
            balances[f["currency"]] = new
    assert remaining and balances


async def test_insufficient_funds_names_an_order_that_was_never_placed() -> None:
    """InsufficientFunds refers to an order id no Placed message announced."""
    with trio.fail_after(30):
        frames = await _frames(seed=6, count=800)
    placed = {f["order_id"] for f in frames if f["@type"].endswith("OrderPlaced")}
    refused = [f for f in frames if f["@type"] == "InsufficientFunds"]
    assert refused
    assert all(
        f["order_id"] not in placed and f["currency"] in ("BTC", "ETH", "USD") for f in refused
    )


async def test_client_frames_other_than_login_are_ignored() -> None:
    """Cryptology has no client messages: a stray frame gets no answer and breaks nothing."""
    with trio.fail_after(20):
        async with running(rate=FAST) as sim, client(sim.url("cryptology")) as ws:
            await ws.send_message('{"op":"subscribe","topic":"orders"}')
            await ws.send_message("garbage")
            frames = [json.loads(f) for f in await collect(ws, 20)]
            assert all("@type" in f for f in frames)
            assert sim.connection_count("cryptology") == 1
            assert sim.subscriptions("cryptology") == set()
