"""One account's session against a small local Piexgo server (real websockets, real time)."""

from __future__ import annotations

import json
import socket
from decimal import Decimal

import attrs
import trio

from alertd.config.model import AuthSettings, Duration, Secret
from alertd.events import BalanceEvidence, Event
from alertd.sources.capture import Recorder, read_capture
from alertd.sources.session import Session

from .helpers import (
    FakePiexgo,
    account,
    balance_frame,
    deal_frame,
    depth_frame,
    until,
)

ALL = ["pinfo", "dealinfo.btc_usdt", "depth.btc_usdt"]


def session(settings, send, **kw) -> Session:  # type: ignore[no-untyped-def]
    return Session(settings=settings, send=send, **kw)


async def test_connects_subscribes_and_decodes(
    nursery: trio.Nursery, fake_piexgo: FakePiexgo, event_channel: tuple
) -> None:
    """After connecting, every stream is subscribed and frames come out as events."""
    send, log = event_channel
    s = session(account(fake_piexgo.url), send)
    with trio.fail_after(5):
        await nursery.start(s.run)
        await log.wait_for("stream.connected")
        await fake_piexgo.wait(lambda: fake_piexgo.subscribed(ALL))
        await fake_piexgo.send(deal_frame("4003.9"))
        trades = await log.wait_for("trade")
    assert trades[0].price == Decimal("4003.9") and trades[0].account == "main"
    assert log.of("stream.connected")[0].downtime is None
    assert {e.currency for e in log.of("balance.changed")} == {"BTC", "USDT"}
    assert (
        s.statistics().connected
        and s.statistics().frames >= 6
        and s.statistics().decode_errors == 0
    )


async def test_drop_reconnects_resubscribes_and_reports_the_gap(
    nursery: trio.Nursery, fake_piexgo: FakePiexgo, event_channel: tuple
) -> None:
    """A dropped connection gives disconnected, connected (with downtime) and an offline gap
    whose evidence lists the balances that moved meanwhile; all streams are back."""
    send, log = event_channel
    s = session(account(fake_piexgo.url), send)
    with trio.fail_after(5):
        await nursery.start(s.run)
        await log.wait_for("balance.changed", 2)
        fake_piexgo.balances = {"BTC": "1.5", "USDT": "750", "ETH": "2"}
        await fake_piexgo.drop(1011)
        [down] = await log.wait_for("stream.disconnected")
        [gap] = await log.wait_for("stream.gap")
        await fake_piexgo.wait(lambda: fake_piexgo.subscribed(ALL))
    assert "1011" in down.reason
    assert log.kinds().index("stream.disconnected") < log.kinds().index("stream.gap")
    up = log.of("stream.connected")
    assert len(up) == 2 and up[1].downtime is not None and up[1].downtime >= 0
    assert gap.why == "offline" and gap.since <= gap.until
    assert gap.evidence == (
        BalanceEvidence(currency="ETH", before=None, after=Decimal(2)),
        BalanceEvidence(currency="USDT", before=Decimal(1000), after=Decimal(750)),
    )
    assert fake_piexgo.subscriptions[-1] == ALL
    assert s.statistics().reconnects >= 1


async def test_malformed_frame_is_an_error_and_the_stream_goes_on(
    nursery: trio.Nursery, fake_piexgo: FakePiexgo, event_channel: tuple
) -> None:
    """A frame that cannot be decoded is a stream.error with an excerpt; later frames flow."""
    send, log = event_channel
    s = session(account(fake_piexgo.url), send)
    with trio.fail_after(5):
        await nursery.start(s.run)
        await log.wait_for("stream.connected")
        await fake_piexgo.send('{"topic": "dealinfo", oops')
        await fake_piexgo.send(deal_frame())
        [error] = await log.wait_for("stream.error")
        await log.wait_for("trade")
    assert error.excerpt.startswith('{"topic": "dealinfo", oops')
    assert s.statistics().decode_errors == 1
    assert len(log.of("stream.connected")) == 1  # no reconnect


async def test_oversize_frame_is_an_error_and_a_reconnect(
    nursery: trio.Nursery, fake_piexgo: FakePiexgo, event_channel: tuple
) -> None:
    """trio-websocket closes with 1009 on a frame over max_message_size: that is a
    stream.error naming the limit, then the session reconnects with all streams."""
    send, log = event_channel
    s = session(account(fake_piexgo.url, max_message_size=4096), send)
    with trio.fail_after(5):
        await nursery.start(s.run)
        await log.wait_for("stream.connected")
        await fake_piexgo.send(json.dumps({"topic": "dealinfo", "pad": "x" * 10_000}))
        [error] = await log.wait_for("stream.error")
        await log.wait_for("stream.connected", 2)
        await fake_piexgo.wait(lambda: fake_piexgo.subscribed(ALL))
    assert "max_message_size (4096 bytes)" in error.reason
    assert log.of("stream.disconnected")[0].reason == "frame too big (1009)"
    assert s.statistics().decode_errors == 1


async def test_market_stream_goes_stale_once_per_silence(
    nursery: trio.Nursery, fake_piexgo: FakePiexgo, event_channel: tuple
) -> None:
    """A quiet market stream is stale once; a frame re-arms it; account streams never are."""
    send, log = event_channel
    settings = account(fake_piexgo.url, market_stale_after=Duration(0.2), ping_interval=0)
    s = session(settings, send)
    with trio.fail_after(5):
        await nursery.start(s.run)
        first = await log.wait_for("stream.stale", 2)
        await trio.sleep(0.5)  # still silent: no repeat
        assert len(log.of("stream.stale")) == 2
        await fake_piexgo.send(deal_frame())
        again = await log.wait_for("stream.stale", 3)
    assert {e.stream for e in first} == {"dealinfo.btc_usdt", "depth.btc_usdt"}
    assert again[2].stream == "dealinfo.btc_usdt"
    assert all(e.silent_for >= 0.2 for e in log.of("stream.stale"))


async def test_rearmed_stream_goes_stale_again_on_its_own_budget(
    nursery: trio.Nursery, fake_piexgo: FakePiexgo, event_channel: tuple
) -> None:
    """A stream that went stale and got a frame is reported stale again after its own budget,
    not when a longer-budget stream's deadline comes round."""
    send, log = event_channel
    budgets = {"depth.btc_usdt": Duration(0.2), "pinfo": Duration(30.0)}
    settings = account(
        fake_piexgo.url, streams=["pinfo", "depth.btc_usdt"], stale_after=budgets, ping_interval=0
    )
    s = session(settings, send)
    with trio.fail_after(5):
        await nursery.start(s.run)
        await log.wait_for("stream.stale", stream="depth.btc_usdt")
        await fake_piexgo.send(depth_frame(100.0, 1))
        await log.wait_for("book")
        rearmed = trio.current_time()
        await log.wait_for("stream.stale", 2, stream="depth.btc_usdt")
    assert trio.current_time() - rearmed < 1.0
    assert [e.stream for e in log.of("stream.stale")] == ["depth.btc_usdt"] * 2


async def test_rejected_login_is_an_error_and_backs_off(
    nursery: trio.Nursery, fake_piexgo: FakePiexgo, event_channel: tuple
) -> None:
    """A login the server rejects is a stream.error each time, never stream.connected, and
    the attempts are spaced by the (growing) backoff."""
    fake_piexgo.reject_login = True
    send, log = event_channel
    auth = AuthSettings(
        api_key=Secret("k"),
        api_secret=Secret("s"),
        login_frame='{"op":"login","key":"{{ api_key }}","ts":{{ timestamp }},'
        '"sign":"{{ hmac_sha256(api_secret, timestamp) }}"}',
    )
    settings = account(
        fake_piexgo.url, auth=auth, backoff_initial=Duration(0.1), backoff_max=Duration(0.4)
    )
    s = session(settings, send)
    with trio.fail_after(5):
        await nursery.start(s.run)
        errors = await log.wait_for("stream.error", 3)
    assert all(e.reason == "login rejected by the server" for e in errors)
    assert "bad key" in errors[0].excerpt
    assert log.of("stream.connected") == []
    assert [e.reason for e in log.of("stream.disconnected")] == ["login rejected"]
    assert fake_piexgo.subscriptions[0] == []  # nothing subscribed before the login is accepted


async def test_login_frame_and_headers_reach_the_server(
    nursery: trio.Nursery, fake_piexgo: FakePiexgo, event_channel: tuple
) -> None:
    """The rendered login frame and handshake headers are sent; subscribing follows the ok."""
    send, log = event_channel
    auth = AuthSettings(
        api_key=Secret("KEY"),
        api_secret=Secret("SECRET"),
        headers={"X-Api-Key": "{{ api_key }}"},
        login_frame='{"op":"login","key":"{{ api_key }}","ts":{{ timestamp }},'
        '"sign":"{{ hmac_sha256(api_secret, timestamp) }}"}',
    )
    s = session(account(fake_piexgo.url, auth=auth), send)
    with trio.fail_after(5):
        await nursery.start(s.run)
        await log.wait_for("stream.connected")
        await fake_piexgo.wait(lambda: fake_piexgo.subscribed(ALL))
    assert fake_piexgo.headers[0]["x-api-key"] == "KEY"
    [login] = fake_piexgo.logins
    from alertd.sources.auth import hmac_sha256

    assert login["key"] == "KEY" and login["sign"] == hmac_sha256("SECRET", str(login["ts"]))
    assert log.of("stream.error") == []


async def test_slow_consumer_never_blocks_the_reader(
    nursery: trio.Nursery, fake_piexgo: FakePiexgo
) -> None:
    """With nobody reading the shared channel, frames are still read; books conflate; the
    account events that did not fit come out as one overflow stream.gap afterwards."""
    send, receive = trio.open_memory_channel[Event](0)
    s = session(account(fake_piexgo.url, queue_size=5, ping_interval=0), send)
    with trio.fail_after(5):
        await nursery.start(s.run)
        await fake_piexgo.wait(lambda: fake_piexgo.subscribed(ALL))
        for i in range(50):
            await fake_piexgo.send(depth_frame(3990 + i, i))
            await fake_piexgo.send(balance_frame("BTC", str(10 + i)))
        await until(lambda: s.statistics().frames >= 3 + 2 + 100)
        events = []
        while not any(e.kind == "book" for e in events) or not any(
            e.kind == "stream.gap" for e in events
        ):
            events.append(await receive.receive())
    assert s.statistics().overflow_dropped > 0 and s.statistics().conflated > 0
    [gap] = [e for e in events if e.kind == "stream.gap"]
    assert gap.why == "overflow" and gap.stream == "pinfo"
    assert gap.raw["dropped"] == s.statistics().overflow_dropped
    [book] = [e for e in events if e.kind == "book"]
    assert book.change_id == 49  # only the latest book went out


async def test_a_consumer_that_falls_behind_and_catches_up_gets_every_event_in_order(
    nursery: trio.Nursery, fake_piexgo: FakePiexgo
) -> None:
    """Events go straight to a shared channel with room and through the buffer when it is
    full; across the switches between the two no event is lost or overtaken."""
    send, receive = trio.open_memory_channel[Event](3)
    s = session(account(fake_piexgo.url, queue_size=500, ping_interval=0), send)
    received: list[Event] = []
    with trio.fail_after(10):
        await nursery.start(s.run)
        await fake_piexgo.wait(lambda: fake_piexgo.subscribed(ALL))
        for i in range(200):
            await fake_piexgo.send(balance_frame("XYZ", str(i + 1)))
            if i % 20 == 19:  # now and then the consumer takes a few, then falls behind again
                for _ in range(5):
                    received.append(await receive.receive())
        while sum(getattr(e, "currency", None) == "XYZ" for e in received) < 200:
            received.append(await receive.receive())
    balances = [e.balance for e in received if getattr(e, "currency", None) == "XYZ"]  # type: ignore[attr-defined]
    assert balances == [Decimal(i + 1) for i in range(200)]
    assert s.statistics().overflow_dropped == 0


async def test_connect_timeout_is_bounded(nursery: trio.Nursery, event_channel: tuple) -> None:
    """A server that accepts TCP but never answers the handshake fails within
    connect_timeout, and the user hears that the stream is down."""
    send, log = event_channel
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    port = listener.getsockname()[1]
    try:
        settings = account(f"ws://127.0.0.1:{port}/ws", connect_timeout=Duration(0.2))
        s = session(settings, send)
        with trio.fail_after(3):
            await nursery.start(s.run)
            [down] = await log.wait_for("stream.disconnected")
        assert down.reason == "connect timed out after 0.2s"
    finally:
        listener.close()


async def test_cancellation_is_prompt_and_leaves_nothing(
    fake_piexgo: FakePiexgo, event_channel: tuple
) -> None:
    """Cancelling a connected session returns quickly and the server sees the close."""
    send, log = event_channel
    s = session(account(fake_piexgo.url), send)
    with trio.fail_after(5):
        async with trio.open_nursery() as inner:
            await inner.start(s.run)
            await log.wait_for("stream.connected")
            start = trio.current_time()
            inner.cancel_scope.cancel()
        elapsed = trio.current_time() - start
        await fake_piexgo.wait(lambda: fake_piexgo.connections[-1].closed is not None)
    assert elapsed < 0.5
    assert not s.statistics().connected


async def test_record_writes_frames_and_facts(
    nursery: trio.Nursery, fake_piexgo: FakePiexgo, event_channel: tuple, tmp_path
) -> None:
    """With a recorder, every received frame and the connect/disconnect facts are captured,
    a disconnect with its reason and the final stop marked as one."""
    send, log = event_channel
    recorder = Recorder(tmp_path, flush_interval=0.05)
    with trio.fail_after(5):
        async with trio.open_nursery() as outer:
            path = await outer.start(recorder.run)
            # Sessions stop before the recorder, so their last facts are captured too.
            async with trio.open_nursery() as inner:
                s = session(account(fake_piexgo.url), send, recorder=recorder)
                await inner.start(s.run)
                await until(lambda: s.statistics().frames == 3 + 2)
                await fake_piexgo.drop()
                await log.wait_for("stream.connected", 2)
                await until(
                    lambda: s.statistics().frames == 2 * (3 + 2)
                )  # acks and snapshot, twice
                inner.cancel_scope.cancel()
            outer.cancel_scope.cancel()
    records = list(read_capture(path))
    facts = [(r.stream_event, r.reason, r.stopped) for r in records if r.stream_event]
    assert facts == [
        ("connected", None, False),
        ("disconnected", "closed with 1011 INTERNAL_ERROR", False),
        ("connected", None, False),
        ("disconnected", None, True),  # the session was stopped: not an outage of its own
    ]
    frames = [r.frame for r in records if r.frame]
    assert frames[0] == '{"op": "subscribe", "topic": "pinfo", "status": "ok"}'
    assert sum(1 for f in frames if '"type": "balance"' in f) == 4
    assert all(r.account == "main" for r in records)


def test_bad_stream_name_is_a_config_error() -> None:
    """An unknown stream refuses to build the session with a message naming the account."""
    import pytest

    from alertd.sources.session import SessionConfigError

    send, _ = trio.open_memory_channel[Event](1)
    settings = attrs.evolve(account("ws://127.0.0.1:1/"), streams=["pinfo", "klines.x"])
    with pytest.raises(SessionConfigError, match=r"account 'main'.*klines\.x"):
        session(settings, send)


async def test_unanswered_login_times_out(
    nursery: trio.Nursery, fake_piexgo: FakePiexgo, event_channel: tuple
) -> None:
    """A login the server never answers is a stream.error after login_timeout and a retry."""
    fake_piexgo.answer_login = False
    send, log = event_channel
    auth = AuthSettings(login_frame='{"op":"login"}', login_timeout=Duration(0.2))
    s = session(account(fake_piexgo.url, auth=auth), send)
    with trio.fail_after(5):
        await nursery.start(s.run)
        [error] = await log.wait_for("stream.error")
        await fake_piexgo.wait(lambda: len(fake_piexgo.logins) >= 2)
    assert error.reason == "login not answered within 0.2s"
    assert log.of("stream.disconnected")[0].reason == "login timed out"
    assert log.of("stream.connected") == []


async def test_unreported_gap_widens_into_the_next(
    nursery: trio.Nursery, fake_piexgo: FakePiexgo, event_channel: tuple
) -> None:
    """When the connection falls again before the gap could be reported (the snapshot was
    still awaited), one gap later spans both outages, with evidence against the balances
    seen before the first."""
    send, log = event_channel
    s = session(account(fake_piexgo.url, streams=["pinfo"]), send)
    with trio.fail_after(5):
        await nursery.start(s.run)
        await log.wait_for("balance.changed", 2)
        fake_piexgo.send_snapshot = False
        await fake_piexgo.drop()
        await log.wait_for("stream.connected", 2)
        await fake_piexgo.wait(lambda: fake_piexgo.subscribed(["pinfo"]))
        assert log.of("stream.gap") == []  # waiting for a snapshot that does not come
        fake_piexgo.send_snapshot = True
        fake_piexgo.balances = {"BTC": "2", "USDT": "1000"}
        await fake_piexgo.drop()
        [gap] = await log.wait_for("stream.gap")
    first_down, second_down = log.of("stream.disconnected")
    assert gap.since <= first_down.time < second_down.time <= gap.until
    assert gap.evidence == (
        BalanceEvidence(currency="BTC", before=Decimal("1.5"), after=Decimal(2)),
    )
