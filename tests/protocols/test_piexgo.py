"""Piexgo decoding: the document's examples, the chosen readings, and the order lifecycle."""

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal as D
from typing import Any

import attrs
import pytest

from alertd.engine.alerts import event_identity
from alertd.events import (
    BalanceChanged,
    Book,
    Event,
    OrderCancelled,
    OrderEvent,
    OrderFilled,
    OrderPartiallyFilled,
    OrderPlaced,
    Trade,
)
from alertd.protocols import ProtocolError, decoder_for
from alertd.protocols.piexgo import PiexgoDecoder, is_market_stream, normalize_stream

from . import frames

RECEIVED = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
ORDER_TIME = datetime(2019, 6, 5, 11, 39, 36, tzinfo=UTC)  # 1559734776, by `date -u -d @...`
COMMON: dict[str, Any] = {"exchange": "piexgo", "account": "main", "received": RECEIVED}


def order_frame(**data: Any) -> str:
    """The document's order example with some ``data`` fields replaced."""
    frame = json.loads(frames.PIEXGO_ORDER)
    frame["data"].update(data)
    return json.dumps(frame)


def balance_frame(token: str, value: str) -> str:
    frame = json.loads(frames.PIEXGO_BALANCE)
    frame["data"].update(token=token, value=value)
    return json.dumps(frame)


def decode(decoder: PiexgoDecoder, frame: str | bytes) -> list[Event]:
    return decoder.decode(frame, RECEIVED)


def orders(decoder: PiexgoDecoder, frame: str) -> list[OrderEvent]:
    """The events of an order frame, checked to be order events."""
    events = decode(decoder, frame)
    assert all(isinstance(e, OrderEvent) for e in events)
    return [e for e in events if isinstance(e, OrderEvent)]


@pytest.fixture
def piexgo() -> PiexgoDecoder:
    return PiexgoDecoder("main")


# -- the document's examples ----------------------------------------------------------------


def test_subscribe_and_unsubscribe_frames_are_the_documents(piexgo: PiexgoDecoder) -> None:
    """The frames we send for the three stream kinds are the document's frames."""
    streams = ["dealinfo.btc_usdt", "depth.btc_usdt", "pinfo"]
    assert [json.loads(f) for f in piexgo.subscribe_frames(streams)] == [
        json.loads(frames.PIEXGO_SUBSCRIBE_DEALINFO),
        json.loads(frames.PIEXGO_SUBSCRIBE_DEPTH),
        json.loads(frames.PIEXGO_SUBSCRIBE_PINFO),
    ]
    assert [json.loads(f) for f in piexgo.unsubscribe_frames(streams)] == [
        json.loads(frames.PIEXGO_UNSUBSCRIBE_DEALINFO),
        json.loads(frames.PIEXGO_UNSUBSCRIBE_DEPTH),
        json.loads(frames.PIEXGO_UNSUBSCRIBE_PINFO),
    ]


def test_document_dealinfo_is_one_trade_per_deal(piexgo: PiexgoDecoder) -> None:
    """The dealinfo example gives two buy-taker trades with millisecond exchange times."""
    events = decode(piexgo, frames.PIEXGO_DEALINFO)
    assert events == [
        Trade(
            **COMMON,
            time=datetime(2019, 3, 23, 7, 34, 51, 272000, tzinfo=UTC),
            symbol="BTC_USDT",
            price=D("4003.9"),
            amount=D("0.0151"),
            side="buy",
        ),
        Trade(
            **COMMON,
            time=datetime(2019, 3, 23, 7, 34, 51, 273000, tzinfo=UTC),
            symbol="BTC_USDT",
            price=D("4003.9"),
            amount=D("0.2349"),
            side="buy",
        ),
    ]
    assert events[0].raw["deals"][1]["vol"] == "0.23490000"


def test_document_depth_is_a_book_with_best_prices_and_spread(piexgo: PiexgoDecoder) -> None:
    """The depth example gives both sides best first, best bid/ask, a 0.02 spread, change_id."""
    [book] = decode(piexgo, frames.PIEXGO_DEPTH)
    assert book == Book(
        **COMMON,
        time=RECEIVED,
        symbol="BTC_USDT",
        bids=(
            (D("3990.67"), D("0.21")),
            (D("3990.56"), D("0.2")),
            (D("3990.52"), D("0.24")),
            (D("3990.49"), D("0.43")),
            (D("3990.48"), D("1.02")),
        ),
        asks=(
            (D("3990.69"), D("0.07")),
            (D("3990.89"), D("0.18")),
            (D("3991.01"), D("1.4")),
            (D("3991.28"), D("1.97")),
            (D("3991.29"), D("0.46")),
        ),
        best_bid=D("3990.67"),
        best_ask=D("3990.69"),
        spread=D("0.02"),
        change_id=36296,
    )


def test_depth_floats_are_decimals_exactly_as_written(piexgo: PiexgoDecoder) -> None:
    """A JSON float price such as 0.1 is Decimal('0.1'), not the binary float's expansion."""
    frame = json.loads(frames.PIEXGO_DEPTH)
    frame["buy_book"] = [{"index": 0, "price": 0.1, "qty": 3.3}]
    [book] = decode(piexgo, json.dumps(frame))
    assert isinstance(book, Book)
    assert str(book.bids[0][0]) == "0.1"
    assert str(book.bids[0][1]) == "3.3"


def test_depth_levels_are_sorted_by_price_not_by_index(piexgo: PiexgoDecoder) -> None:
    """Levels sent out of order still come out best first on both sides."""
    frame = json.loads(frames.PIEXGO_DEPTH)
    frame["buy_book"].reverse()
    frame["sell_book"].reverse()
    [book] = decode(piexgo, json.dumps(frame))
    assert isinstance(book, Book)
    assert book.best_bid == D("3990.67")
    assert book.best_ask == D("3990.69")
    assert [p for p, _ in book.bids] == sorted((p for p, _ in book.bids), reverse=True)


def test_depth_with_an_empty_side_has_no_spread(piexgo: PiexgoDecoder) -> None:
    """An empty sell book gives no best ask and no spread rather than an error."""
    frame = json.loads(frames.PIEXGO_DEPTH)
    frame["sell_book"] = []
    [book] = decode(piexgo, json.dumps(frame))
    assert isinstance(book, Book)
    assert (book.asks, book.best_ask, book.spread) == ((), None, None)


def test_document_order_is_a_fill_with_money_fields(piexgo: PiexgoDecoder) -> None:
    """The order example (status 2) is one order.filled: limit 7831.16, 1 BTC, filled at
    7828.08 for 7828.0752 USDT, 0.0393% better than the limit."""
    events = decode(piexgo, frames.PIEXGO_ORDER)
    assert events == [
        OrderFilled(
            **COMMON,
            time=RECEIVED,  # an update says nothing of when it happened: seen now
            order_time=ORDER_TIME,
            order_id="1136203593297424385",
            symbol="BTC_USDT",
            side="buy",
            price=D("7831.16"),
            amount=D("1"),
            remaining=D("0"),
            filled=D("1"),
            fill_price=D("7828.08"),
            notional=D("7828.0752"),
            slippage=D("-0.000393300609361"),  # -3.08 / 7831.16 by bc, to 12 digits
        )
    ]
    assert isinstance(events[0], OrderFilled)
    assert str(events[0].remaining) == "0"  # not "0E-8"


def test_document_balance_has_no_change_on_first_sight(piexgo: PiexgoDecoder) -> None:
    """The balance example gives balance.changed for BTC with change None (nothing before)."""
    assert decode(piexgo, frames.PIEXGO_BALANCE) == [
        BalanceChanged(**COMMON, time=RECEIVED, currency="BTC", balance=D("10000991076.10471725"))
    ]
    assert piexgo.balances == {"BTC": D("10000991076.10471725")}


# -- chosen readings --------------------------------------------------------------------------


def test_direct_0_is_a_buy_taker_and_1_a_sell_taker(piexgo: PiexgoDecoder) -> None:
    """`direct` 0 reads as buy and 1 as sell (the taker's side)."""
    frame = json.loads(frames.PIEXGO_DEALINFO)
    frame["deals"][1]["direct"] = 1
    events = decode(piexgo, json.dumps(frame))
    assert [e.side for e in events if isinstance(e, Trade)] == ["buy", "sell"]


def test_unknown_direct_is_an_error_not_a_guess(piexgo: PiexgoDecoder) -> None:
    """A `direct` other than 0 or 1 is a ProtocolError naming the field."""
    frame = json.loads(frames.PIEXGO_DEALINFO)
    frame["deals"][0]["direct"] = 2
    with pytest.raises(ProtocolError, match=r"deals\[0\]\.direct must be 0 \(buy\) or 1"):
        decode(piexgo, json.dumps(frame))


def test_order_timestamp_is_seconds(piexgo: PiexgoDecoder) -> None:
    """An order's `timestamp` 1700000000 is 2023-11-14T22:13:20Z (seconds, not ms)."""
    [event] = decode(piexgo, order_frame(timestamp=1700000000))
    assert isinstance(event, OrderEvent)
    assert event.order_time == datetime(2023, 11, 14, 22, 13, 20, tzinfo=UTC)


def test_a_fill_is_timed_when_seen_not_when_the_order_was_made(piexgo: PiexgoDecoder) -> None:
    """An order made hours ago that fills now says it filled now; its creation time stays
    ``order_time``, and seeing the same update again gives the same alert cause."""
    made = 1700000000
    decode(piexgo, order_frame(timestamp=made, status=0, remain="1"))
    later = datetime(2023, 11, 15, 3, 0, tzinfo=UTC)
    [fill] = piexgo.decode(order_frame(timestamp=made, status=2, remain="0"), later)
    assert fill.kind == "order.filled"
    assert fill.time == later
    assert isinstance(fill, OrderEvent)
    assert fill.order_time == datetime(2023, 11, 14, 22, 13, 20, tzinfo=UTC)
    again = attrs.evolve(fill, time=later + timedelta(seconds=3), received=later)
    assert event_identity(again) == event_identity(fill)


def test_order_fields_map_to_limit_quantity_fill_and_notional(piexgo: PiexgoDecoder) -> None:
    """order_price is the limit, volume the quantity, remain what is open, amount the quote
    value executed, price the average fill price."""
    decode(piexgo, order_frame(status=0, remain="2", volume="2", amount="0", price="0"))
    [event] = decode(
        piexgo,
        order_frame(
            status=0, order_price="100", volume="2", remain="0.5", amount="151.5", price="101"
        ),
    )
    assert isinstance(event, OrderPartiallyFilled)
    assert (event.price, event.amount, event.remaining, event.filled) == (
        D(100),
        D(2),
        D("0.5"),
        D("1.5"),
    )
    assert (event.fill_price, event.notional, event.last_filled) == (D(101), D("151.5"), D("1.5"))


def test_zero_order_price_is_a_market_order_without_slippage(piexgo: PiexgoDecoder) -> None:
    """order_price 0 gives price None and slippage None, but still a fill price."""
    [event] = decode(piexgo, order_frame(order_price="0"))
    assert isinstance(event, OrderFilled)
    assert (event.price, event.slippage, event.fill_price) == (None, None, D("7828.08"))


@pytest.mark.parametrize(
    ("side", "fill", "expected"),
    [
        ("buy", "101", D("0.01")),
        ("buy", "99", D("-0.01")),
        ("sell", "99", D("0.01")),
        ("sell", "101", D("-0.01")),
    ],
)
def test_slippage_is_positive_when_the_fill_is_worse(
    piexgo: PiexgoDecoder, side: str, fill: str, expected: D
) -> None:
    """Buying above or selling below a 100 limit is +1% slippage; the reverse is -1%."""
    [event] = decode(piexgo, order_frame(type=side, order_price="100", price=fill))
    assert isinstance(event, OrderFilled)
    assert event.slippage == expected


def test_stop_market_price_flag_and_id_do_not_change_the_events(piexgo: PiexgoDecoder) -> None:
    """stop, market_price, flag and id are carried in raw only: other values, or none at all,
    give the same events."""
    plain = decode(PiexgoDecoder("main"), frames.PIEXGO_ORDER)
    varied = decode(
        PiexgoDecoder("main"),
        order_frame(stop="7000", market_price="7800", flag=1, id=1),
    )
    frame = json.loads(frames.PIEXGO_ORDER)
    for key in ("stop", "market_price", "flag", "id"):
        del frame["data"][key]
    missing = decode(PiexgoDecoder("main"), json.dumps(frame))
    assert plain == varied == missing
    assert varied[0].raw["data"]["flag"] == 1


def test_an_id_that_goes_backwards_does_not_hide_a_fill(piexgo: PiexgoDecoder) -> None:
    """Updates are ordered by remain and status, not id: a lower id still reports a fill."""
    decode(piexgo, order_frame(status=0, remain="1", id=200))
    [event] = decode(piexgo, order_frame(status=0, remain="0.4", id=100))
    assert isinstance(event, OrderPartiallyFilled)
    assert event.last_filled == D("0.6")


# -- order lifecycle --------------------------------------------------------------------------


def test_full_lifecycle_placed_partial_partial_filled(piexgo: PiexgoDecoder) -> None:
    """Status 0, two lower remains, then status 2 give placed, two partial fills, filled."""
    steps = [
        order_frame(status=0, remain="1", amount="0", price="0"),
        order_frame(status=0, remain="0.75"),
        order_frame(status=0, remain="0.25"),
        order_frame(status=2, remain="0"),
    ]
    events = [e for f in steps for e in orders(piexgo, f)]
    assert [type(e) for e in events] == [
        OrderPlaced,
        OrderPartiallyFilled,
        OrderPartiallyFilled,
        OrderFilled,
    ]
    placed = events[0]
    assert (placed.remaining, placed.filled, placed.fill_price) == (D(1), D(0), None)
    partials = [e for e in events if isinstance(e, OrderPartiallyFilled)]
    assert [(e.last_filled, e.filled, e.remaining) for e in partials] == [
        (D("0.25"), D("0.25"), D("0.75")),
        (D("0.5"), D("0.75"), D("0.25")),
    ]
    assert events[3].filled == D(1)
    assert piexgo.orders.open_count == 0


def test_repeated_and_late_updates_produce_nothing(piexgo: PiexgoDecoder) -> None:
    """The same update twice, a late higher remain, a status 0 after the fill and a second
    fill produce no further events."""
    assert len(decode(piexgo, order_frame(status=0, remain="1"))) == 1
    assert len(decode(piexgo, order_frame(status=0, remain="0.5"))) == 1
    assert decode(piexgo, order_frame(status=0, remain="0.5")) == []
    assert decode(piexgo, order_frame(status=0, remain="0.8")) == []
    assert len(decode(piexgo, order_frame(status=2, remain="0"))) == 1
    assert decode(piexgo, order_frame(status=0, remain="0.5")) == []
    assert decode(piexgo, order_frame(status=2, remain="0")) == []
    assert decode(piexgo, order_frame(status=4, remain="0")) == []


def test_first_sight_of_a_partly_filled_order_reports_the_fill(piexgo: PiexgoDecoder) -> None:
    """An open order first seen with remain below volume gives placed then a partial fill."""
    events = decode(piexgo, order_frame(status=0, volume="2", remain="1.5"))
    assert [type(e) for e in events] == [OrderPlaced, OrderPartiallyFilled]
    assert isinstance(events[1], OrderPartiallyFilled)
    assert (events[1].last_filled, events[1].filled) == (D("0.5"), D("0.5"))


def test_cancel_after_an_unseen_fill_reports_the_fill_then_the_cancel(
    piexgo: PiexgoDecoder,
) -> None:
    """Status 4 with remain lower than last seen gives the partial fill, then cancelled."""
    decode(piexgo, order_frame(status=0, volume="2", remain="2"))
    events = orders(piexgo, order_frame(status=4, volume="2", remain="1.5"))
    assert [type(e) for e in events] == [OrderPartiallyFilled, OrderCancelled]
    assert (events[1].filled, events[1].remaining) == (D("0.5"), D("1.5"))


def test_cancel_of_an_untouched_order(piexgo: PiexgoDecoder) -> None:
    """Status 4 after status 0 with nothing filled is one order.cancelled."""
    decode(piexgo, order_frame(status=0, remain="1"))
    [event] = decode(piexgo, order_frame(status=4, remain="1"))
    assert isinstance(event, OrderCancelled)
    assert (event.filled, event.remaining) == (D(0), D(1))


def test_orders_are_tracked_separately(piexgo: PiexgoDecoder) -> None:
    """Two orders' updates interleave without affecting each other."""
    decode(piexgo, order_frame(order_id="a", status=0, remain="1"))
    decode(piexgo, order_frame(order_id="b", status=0, remain="1"))
    [a] = orders(piexgo, order_frame(order_id="a", status=0, remain="0.5"))
    [b] = orders(piexgo, order_frame(order_id="b", status=0, remain="0.9"))
    assert (a.order_id, a.filled, b.order_id, b.filled) == ("a", D("0.5"), "b", D("0.1"))


def test_sell_orders_and_other_markets(piexgo: PiexgoDecoder) -> None:
    """type 'sell' gives side sell; market 'eth_btc' is normalized to ETH_BTC."""
    [event] = decode(piexgo, order_frame(type="sell", market="eth_btc"))
    assert isinstance(event, OrderFilled)
    assert (event.side, event.symbol) == ("sell", "ETH_BTC")


def test_a_failed_frame_leaves_the_tracker_unchanged(piexgo: PiexgoDecoder) -> None:
    """A bad update (remain not a number) changes nothing: the next good one still sees the
    full drop since the last good update."""
    decode(piexgo, order_frame(status=0, remain="1"))
    with pytest.raises(ProtocolError, match=r"data\.remain must be a number"):
        decode(piexgo, order_frame(status=0, remain="lots"))
    [event] = decode(piexgo, order_frame(status=0, remain="0.3"))
    assert isinstance(event, OrderPartiallyFilled)
    assert event.last_filled == D("0.7")


# -- balances ---------------------------------------------------------------------------------


def test_balance_change_is_computed_from_the_last_value(piexgo: PiexgoDecoder) -> None:
    """The second and third values of a token give changes of +5 and -7.5; tokens are
    tracked separately and by upper-case name."""
    events = [
        *decode(piexgo, balance_frame("btc", "10")),
        *decode(piexgo, balance_frame("USDT", "3")),
        *decode(piexgo, balance_frame("BTC", "15")),
        *decode(piexgo, balance_frame("BTC", "7.5")),
    ]
    changes = [(e.currency, e.balance, e.change) for e in events if isinstance(e, BalanceChanged)]
    assert changes == [
        ("BTC", 10, None),
        ("USDT", 3, None),
        ("BTC", 15, 5),
        ("BTC", D("7.5"), D("-7.5")),
    ]
    assert piexgo.balances == {"BTC": D("7.5"), "USDT": 3}


def test_a_repeated_balance_is_not_a_change(piexgo: PiexgoDecoder) -> None:
    """The same value again (e.g. a snapshot after resubscribing) produces no event."""
    decode(piexgo, balance_frame("BTC", "10"))
    assert decode(piexgo, balance_frame("BTC", "10.000")) == []


def test_a_negative_balance_is_an_error(piexgo: PiexgoDecoder) -> None:
    """A negative balance value is a ProtocolError and is not remembered."""
    with pytest.raises(ProtocolError, match=r"data\.value must not be negative"):
        decode(piexgo, balance_frame("BTC", "-1"))
    assert piexgo.balances == {}


# -- replies, streams, factory ----------------------------------------------------------------


@pytest.mark.parametrize(
    "frame",
    [
        '{"op":"subscribe","topic":"pinfo","status":"ok"}',
        '{"op":"unsubscribe","topic":"depth.btc_usdt","status":"ok"}',
        '{"op":"login","status":"ok"}',
    ],
)
def test_ok_replies_are_no_events(piexgo: PiexgoDecoder, frame: str) -> None:
    """Subscribe, unsubscribe and login acknowledgements decode to no events."""
    assert decode(piexgo, frame) == []


def test_a_rejected_subscription_names_the_topic_and_reason(piexgo: PiexgoDecoder) -> None:
    """A subscribe error reply is a ProtocolError naming the topic and the server's msg."""
    frame = '{"op":"subscribe","topic":"depth.nope","status":"error","msg":"unknown topic"}'
    with pytest.raises(ProtocolError) as info:
        decode(piexgo, frame)
    assert info.value.reason == "piexgo rejected subscribe of topic 'depth.nope': unknown topic"


def test_a_rejected_login_is_an_error(piexgo: PiexgoDecoder) -> None:
    """A login error reply is a ProtocolError carrying the server's msg."""
    with pytest.raises(ProtocolError, match="rejected the login: bad signature"):
        decode(piexgo, '{"op":"login","status":"error","msg":"bad signature"}')


def test_stream_names_are_normalized_to_the_wire_form(piexgo: PiexgoDecoder) -> None:
    """Config names in any case or symbol spelling become the lowercase wire topics, once."""
    assert normalize_stream(" PInfo ") == "pinfo"
    assert normalize_stream("Depth.BTC-USDT") == "depth.btc_usdt"
    assert piexgo.subscribe_frames(["DEALINFO.BTC_USDT", "dealinfo.btc_usdt"]) == [
        '{"op":"subscribe","topic":"dealinfo.btc_usdt"}'
    ]


@pytest.mark.parametrize("name", ["kline.btc_usdt", "depth", "depth.", "pinfo.x", ""])
def test_unknown_stream_names_are_refused(name: str) -> None:
    """A stream name Piexgo does not have is a ValueError that lists the valid forms."""
    with pytest.raises(ValueError, match=r"use 'pinfo', 'dealinfo\.<symbol>'"):
        normalize_stream(name)


def test_stream_for_and_market_streams(piexgo: PiexgoDecoder) -> None:
    """Orders and balances belong to pinfo, trades and books to their symbol's stream; only
    the latter are market streams."""
    events = [
        *decode(piexgo, frames.PIEXGO_ORDER),
        *decode(piexgo, frames.PIEXGO_BALANCE),
        *decode(piexgo, frames.PIEXGO_DEALINFO)[:1],
        *decode(piexgo, frames.PIEXGO_DEPTH),
    ]
    streams = [piexgo.stream_for(e) or "" for e in events]
    assert streams == ["pinfo", "pinfo", "dealinfo.btc_usdt", "depth.btc_usdt"]
    assert [is_market_stream(s) for s in streams] == [False, False, True, True]
    assert piexgo.is_market_stream("Depth.ETH_BTC")


def test_decoder_for_builds_a_piexgo_decoder() -> None:
    """decoder_for('piexgo', name) gives a fresh Piexgo decoder for that account."""
    decoder = decoder_for("piexgo", "main")
    assert isinstance(decoder, PiexgoDecoder)
    assert (decoder.exchange, decoder.account) == ("piexgo", "main")
    with pytest.raises(ValueError, match="unknown exchange 'binance'"):
        decoder_for("binance", "main")


def test_bytes_frames_decode_like_text(piexgo: PiexgoDecoder) -> None:
    """A frame received as bytes decodes to the same events as the text frame."""
    assert decode(piexgo, frames.PIEXGO_DEPTH.encode()) == decode(
        PiexgoDecoder("main"), frames.PIEXGO_DEPTH
    )
