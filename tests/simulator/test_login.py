"""The agreed login frame: HMAC-SHA256 of the timestamp, checked on both exchanges."""

from __future__ import annotations

import hashlib
import hmac
import json
import time

import pytest
import trio
from trio_websocket import ConnectionClosed, WebSocketConnection

from .helpers import client, recv, running, subscribe

CREDENTIALS = {"demo-key": "demo-secret"}


def login_frame(key: str = "demo-key", secret: str = "demo-secret") -> str:
    ts = int(time.time() * 1000)
    sign = hmac.new(secret.encode(), str(ts).encode(), hashlib.sha256).hexdigest()
    return json.dumps({"op": "login", "key": key, "ts": ts, "sign": sign})


async def assert_closed_with(ws: WebSocketConnection, code: int) -> None:
    with pytest.raises(ConnectionClosed) as closed:
        while True:
            await ws.get_message()
    assert closed.value.reason.code == code


async def test_piexgo_requires_login_before_subscribing() -> None:
    """With credentials configured a subscribe is refused until a good login is acknowledged."""
    with trio.fail_after(10):
        async with (
            running(scenario="quiet", credentials=CREDENTIALS) as sim,
            client(sim.url("piexgo")) as ws,
        ):
            await ws.send_message('{"op":"subscribe","topic":"pinfo"}')
            refused = await recv(ws)
            assert refused["status"] == "error" and refused["msg"] == "login required"
            await ws.send_message(login_frame())
            assert await recv(ws) == {"op": "login", "status": "ok"}
            assert (await subscribe(ws, "pinfo"))[-1]["status"] == "ok"


@pytest.mark.parametrize("exchange", ["piexgo", "cryptology"])
async def test_a_bad_signature_is_answered_and_closed_with_1008(exchange: str) -> None:
    """A login signed with the wrong secret gets the error frame, then close code 1008."""
    with trio.fail_after(10):
        async with (
            running(scenario="quiet", credentials=CREDENTIALS) as sim,
            client(sim.url(exchange)) as ws,
        ):
            await ws.send_message(login_frame(secret="wrong"))
            assert await recv(ws) == {
                "op": "login",
                "status": "error",
                "msg": "invalid signature",
            }
            await assert_closed_with(ws, 1008)


async def test_cryptology_pushes_nothing_before_login() -> None:
    """A Cryptology client that has not logged in receives nothing; after login it streams."""
    with trio.fail_after(10):
        async with (
            running(rate=500.0, credentials=CREDENTIALS) as sim,
            client(sim.url("cryptology")) as ws,
        ):
            with trio.move_on_after(0.5) as idle:
                await ws.get_message()
            assert idle.cancelled_caught
            await ws.send_message(login_frame())
            assert await recv(ws) == {"op": "login", "status": "ok"}
            assert "@type" in await recv(ws)


@pytest.mark.parametrize("exchange", ["piexgo", "cryptology"])
async def test_reject_login_scenario_rejects_even_a_good_login(exchange: str) -> None:
    """In reject-login every login, however well signed, is an error and a 1008 close."""
    with trio.fail_after(10):
        async with (
            running(scenario="reject-login", credentials=CREDENTIALS) as sim,
            client(sim.url(exchange)) as ws,
        ):
            await ws.send_message(login_frame())
            answer = await recv(ws)
            assert answer["op"] == "login" and answer["status"] == "error"
            await assert_closed_with(ws, 1008)
