"""Cryptology decoding: the document's examples, stream names, and the order lifecycle."""

import json
from datetime import UTC, datetime
from decimal import Decimal as D
from typing import Any

import pytest

from alertd.events import (
    BalanceChanged,
    Book,
    Event,
    FundsInsufficient,
    OrderCancelled,
    OrderFilled,
    OrderPartiallyFilled,
    OrderPlaced,
    StreamStale,
    Trade,
)
from alertd.protocols import ProtocolError, decoder_for
from alertd.protocols.cryptology import CryptologyDecoder, is_market_stream, normalize_stream

from . import frames

RECEIVED = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
Y2K = datetime(2000, 1, 1, tzinfo=UTC)  # [946684800, 0]
COMMON: dict[str, Any] = {"exchange": "cryptology", "account": "acct", "received": RECEIVED}
ORDER: dict[str, Any] = {
    **COMMON,
    "time": Y2K,
    "order_id": "1",
    "client_order_id": "123",
    "symbol": "BTC_USD",
    "side": "buy",
}


def frame(example: str, **changes: Any) -> str:
    """A document example with some fields replaced (None deletes the field)."""
    obj = json.loads(example)
    for key, value in changes.items():
        if value is None:
            obj.pop(key, None)
        else:
            obj[key] = value
    return json.dumps(obj)


def decode(decoder: CryptologyDecoder, text: str | bytes) -> list[Event]:
    return decoder.decode(text, RECEIVED)


@pytest.fixture
def crypto() -> CryptologyDecoder:
    return CryptologyDecoder("acct")


# -- the document's examples, each on a fresh decoder -----------------------------------------


def test_document_order_placed(crypto: CryptologyDecoder) -> None:
    """BuyOrderPlaced gives order.placed with ids as strings, exact time, nothing filled."""
    assert decode(crypto, frames.CRYPTOLOGY_PLACED) == [
        OrderPlaced(
            **ORDER,
            price=D(1),
            amount=D(1),
            remaining=D(1),
            filled=D(0),
            notional=D(0),
        )
    ]


def test_document_amount_changed_on_an_unknown_order(crypto: CryptologyDecoder) -> None:
    """BuyOrderAmountChanged for an order never seen gives a partial fill with what remains
    and unknown (None) amount and fill."""
    assert decode(crypto, frames.CRYPTOLOGY_AMOUNT_CHANGED) == [
        OrderPartiallyFilled(**ORDER, remaining=D(1))
    ]


def test_document_cancelled_on_an_unknown_order(crypto: CryptologyDecoder) -> None:
    """BuyOrderCancelled for an order never seen gives order.cancelled with only its ids."""
    assert decode(crypto, frames.CRYPTOLOGY_CANCELLED) == [OrderCancelled(**ORDER)]


def test_document_closed_on_an_unknown_order(crypto: CryptologyDecoder) -> None:
    """BuyOrderClosed for an order never seen gives order.filled with nothing remaining."""
    assert decode(crypto, frames.CRYPTOLOGY_CLOSED) == [OrderFilled(**ORDER, remaining=D(0))]


def test_document_set_balance(crypto: CryptologyDecoder) -> None:
    """SetBalance gives balance.changed with the exchange's change and reason."""
    assert decode(crypto, frames.CRYPTOLOGY_SET_BALANCE) == [
        BalanceChanged(
            **COMMON,
            time=Y2K,
            currency="USD",
            balance=D(1),
            change=D(1),
            reason="aaaaa",
        )
    ]
    assert crypto.balances == {"USD": D(1)}


def test_document_insufficient_funds(crypto: CryptologyDecoder) -> None:
    """InsufficientFunds gives funds.insufficient at the receive time (it has no time)."""
    assert decode(crypto, frames.CRYPTOLOGY_INSUFFICIENT_FUNDS) == [
        FundsInsufficient(**COMMON, time=RECEIVED, order_id="1", currency="USD")
    ]


def test_document_anonymous_trade(crypto: CryptologyDecoder) -> None:
    """AnonymousTrade with maker_buy false is a trade whose taker bought."""
    assert decode(crypto, frames.CRYPTOLOGY_ANONYMOUS_TRADE) == [
        Trade(**COMMON, time=Y2K, symbol="BTC_USD", price=D(1), amount=D(1), side="buy")
    ]


def test_document_order_book(crypto: CryptologyDecoder) -> None:
    """OrderBookAgg gives a book with decimal price keys; the example is crossed, so the spread
    is negative."""
    assert decode(crypto, frames.CRYPTOLOGY_BOOK) == [
        Book(
            **COMMON,
            time=RECEIVED,
            symbol="BTC_USD",
            bids=((D(1), D(1)),),
            asks=((D("0.1"), D(1)),),
            best_bid=D(1),
            best_ask=D("0.1"),
            spread=D("-0.9"),
        )
    ]


def test_document_lifecycle_in_order(crypto: CryptologyDecoder) -> None:
    """Placed, an AmountChanged that leaves the amount at 1 (no fill), then Closed give placed
    and a fill of the whole amount at the limit price."""
    events = [
        e
        for f in (
            frames.CRYPTOLOGY_PLACED,
            frames.CRYPTOLOGY_AMOUNT_CHANGED,
            frames.CRYPTOLOGY_CLOSED,
        )
        for e in decode(crypto, f)
    ]
    assert events[1:] == [
        OrderFilled(
            **ORDER,
            price=D(1),
            amount=D(1),
            remaining=D(0),
            filled=D(1),
            notional=D(1),
        )
    ]
    assert isinstance(events[0], OrderPlaced)


# -- readings and lifecycle -------------------------------------------------------------------


def test_time_pair_is_exact_to_the_microsecond(crypto: CryptologyDecoder) -> None:
    """[1700000000, 123456] is 2023-11-14T22:13:20.123456Z exactly."""
    [event] = decode(crypto, frame(frames.CRYPTOLOGY_SET_BALANCE, time=[1700000000, 123456]))
    assert event.time == datetime(2023, 11, 14, 22, 13, 20, 123456, tzinfo=UTC)


def test_closed_inline_gives_placed_then_filled_and_ends_the_order(
    crypto: CryptologyDecoder,
) -> None:
    """closed_inline true gives order.placed then order.filled; later messages for the order
    produce nothing."""
    events = decode(crypto, frame(frames.CRYPTOLOGY_PLACED, closed_inline=True, price="20000"))
    assert [type(e) for e in events] == [OrderPlaced, OrderFilled]
    filled = events[1]
    assert isinstance(filled, OrderFilled)
    assert (filled.filled, filled.remaining, filled.notional) == (D(1), D(0), D(20000))
    assert decode(crypto, frames.CRYPTOLOGY_CLOSED) == []
    assert decode(crypto, frame(frames.CRYPTOLOGY_AMOUNT_CHANGED, amount="0.5")) == []


def test_amount_changed_is_the_new_remaining_amount(crypto: CryptologyDecoder) -> None:
    """Amounts 10 -> 7 -> 2 remaining are fills of 3 then 5 (cumulative 3 then 8)."""
    decode(crypto, frame(frames.CRYPTOLOGY_PLACED, amount="10", price="2.5"))
    first = decode(crypto, frame(frames.CRYPTOLOGY_AMOUNT_CHANGED, amount="7"))
    second = decode(crypto, frame(frames.CRYPTOLOGY_AMOUNT_CHANGED, amount="2"))
    partials = [e for e in (*first, *second) if isinstance(e, OrderPartiallyFilled)]
    assert [(e.last_filled, e.filled, e.remaining, e.amount) for e in partials] == [
        (D(3), D(3), D(7), D(10)),
        (D(5), D(8), D(2), D(10)),
    ]
    assert [(e.price, e.notional) for e in partials] == [(D("2.5"), D("7.5")), (D("2.5"), D(20))]


def test_repeated_and_late_amount_changes_produce_nothing(crypto: CryptologyDecoder) -> None:
    """The same AmountChanged twice, or one with a higher amount after a lower, is ignored."""
    decode(crypto, frame(frames.CRYPTOLOGY_PLACED, amount="10"))
    assert len(decode(crypto, frame(frames.CRYPTOLOGY_AMOUNT_CHANGED, amount="4"))) == 1
    assert decode(crypto, frame(frames.CRYPTOLOGY_AMOUNT_CHANGED, amount="4")) == []
    assert decode(crypto, frame(frames.CRYPTOLOGY_AMOUNT_CHANGED, amount="7")) == []
    [filled] = decode(crypto, frames.CRYPTOLOGY_CLOSED)
    assert isinstance(filled, OrderFilled)
    assert (filled.filled, filled.remaining) == (D(10), D(0))
    assert decode(crypto, frames.CRYPTOLOGY_CLOSED) == []
    assert decode(crypto, frames.CRYPTOLOGY_PLACED) == []


def test_cancel_after_a_partial_fill_reports_what_was_filled(crypto: CryptologyDecoder) -> None:
    """A cancel after 10 -> 6 carries filled 4 and remaining 6 from the tracked order."""
    decode(crypto, frame(frames.CRYPTOLOGY_PLACED, amount="10"))
    decode(crypto, frame(frames.CRYPTOLOGY_AMOUNT_CHANGED, amount="6"))
    [event] = decode(crypto, frames.CRYPTOLOGY_CANCELLED)
    assert isinstance(event, OrderCancelled)
    assert (event.amount, event.filled, event.remaining, event.price) == (D(10), D(4), D(6), D(1))
    assert decode(crypto, frames.CRYPTOLOGY_CLOSED) == []


def test_sell_prefix_gives_side_sell(crypto: CryptologyDecoder) -> None:
    """SellOrderPlaced and the later SellOrderClosed are sell-side events."""
    placed = decode(crypto, frame(frames.CRYPTOLOGY_PLACED, **{"@type": "SellOrderPlaced"}))
    closed = decode(crypto, frame(frames.CRYPTOLOGY_CLOSED, **{"@type": "SellOrderClosed"}))
    assert [e.side for e in (*placed, *closed) if isinstance(e, OrderPlaced | OrderFilled)] == [
        "sell",
        "sell",
    ]


def test_client_order_id_is_optional_and_carried_from_the_placement(
    crypto: CryptologyDecoder,
) -> None:
    """A later message without client_order_id still carries the one given at placement; an
    order placed without one has None."""
    decode(crypto, frames.CRYPTOLOGY_PLACED)
    [closed] = decode(crypto, frame(frames.CRYPTOLOGY_CLOSED, client_order_id=None))
    assert isinstance(closed, OrderFilled)
    assert closed.client_order_id == "123"
    [placed] = decode(crypto, frame(frames.CRYPTOLOGY_PLACED, order_id=2, client_order_id=None))
    assert isinstance(placed, OrderPlaced)
    assert (placed.order_id, placed.client_order_id) == ("2", None)


def test_maker_buy_true_is_a_selling_taker(crypto: CryptologyDecoder) -> None:
    """AnonymousTrade with maker_buy true is a trade whose taker sold."""
    [trade] = decode(crypto, frame(frames.CRYPTOLOGY_ANONYMOUS_TRADE, maker_buy=True))
    assert isinstance(trade, Trade)
    assert trade.side == "sell"


def test_book_sides_sorted_best_first_and_may_be_empty(crypto: CryptologyDecoder) -> None:
    """Bids come highest first, asks lowest first; an empty side gives no best and no spread."""
    text = frame(
        frames.CRYPTOLOGY_BOOK,
        buy_levels={"99.5": "1", "100": "2", "98": "3"},
        sell_levels={"101": "1", "100.5": "0.25"},
    )
    [book] = decode(crypto, text)
    assert isinstance(book, Book)
    assert book.bids == ((D(100), D(2)), (D("99.5"), D(1)), (D(98), D(3)))
    assert book.asks == ((D("100.5"), D("0.25")), (D(101), D(1)))
    assert book.spread == D("0.5")
    [empty] = decode(crypto, frame(frames.CRYPTOLOGY_BOOK, buy_levels={}, sell_levels={}))
    assert isinstance(empty, Book)
    assert (empty.bids, empty.asks, empty.best_bid, empty.spread) == ((), (), None, None)


def test_negative_change_is_fine_but_negative_balance_is_not(crypto: CryptologyDecoder) -> None:
    """SetBalance may report a negative change; a negative balance is a ProtocolError."""
    [event] = decode(crypto, frame(frames.CRYPTOLOGY_SET_BALANCE, change="-0.5"))
    assert isinstance(event, BalanceChanged)
    assert event.change == D("-0.5")
    with pytest.raises(ProtocolError, match="balance must not be negative"):
        decode(crypto, frame(frames.CRYPTOLOGY_SET_BALANCE, balance="-1"))


# -- streams, replies, factory ----------------------------------------------------------------


def test_nothing_is_sent_to_subscribe(crypto: CryptologyDecoder) -> None:
    """Cryptology pushes everything: subscribe and unsubscribe frames are empty lists."""
    assert crypto.subscribe_frames(["account", "trades.BTC_USD", "book.btc-usd"]) == []
    assert crypto.unsubscribe_frames(["account"]) == []


def test_unknown_stream_names_are_refused(crypto: CryptologyDecoder) -> None:
    """A name that is not account, trades.<PAIR> or book.<PAIR> is a ValueError, also when
    building (empty) subscribe frames."""
    with pytest.raises(ValueError, match=r"use 'account', 'trades\.<PAIR>'"):
        normalize_stream("orders")
    with pytest.raises(ValueError, match="unknown cryptology stream 'pinfo'"):
        crypto.subscribe_frames(["pinfo"])


def test_stream_names_normalize_and_match_events(crypto: CryptologyDecoder) -> None:
    """Config names in any case normalize to the form stream_for gives each event."""
    assert normalize_stream("ACCOUNT") == "account"
    assert normalize_stream("Trades.btc-usd") == "trades.BTC_USD"
    assert normalize_stream("book.btc_usd") == "book.BTC_USD"
    streams = [
        crypto.stream_for(e)
        for f in frames.CRYPTOLOGY_RECEIVED
        for e in decode(CryptologyDecoder("acct"), f)
    ]
    assert streams == ["account"] * 6 + ["trades.BTC_USD", "book.BTC_USD"]
    assert [is_market_stream(s) for s in ("account", "trades.BTC_USD", "Book.x_y")] == [
        False,
        True,
        True,
    ]
    stale = StreamStale(**COMMON, time=RECEIVED, stream="account", silent_for=1.0)
    assert crypto.stream_for(stale) is None


def test_login_replies(crypto: CryptologyDecoder) -> None:
    """A login ok reply is no events; a login error is a ProtocolError with the server's msg."""
    assert decode(crypto, '{"op":"login","status":"ok"}') == []
    with pytest.raises(ProtocolError, match="cryptology rejected the login: expired key"):
        decode(crypto, '{"op":"login","status":"error","msg":"expired key"}')


def test_unknown_type_is_an_error(crypto: CryptologyDecoder) -> None:
    """An unknown @type is a ProtocolError naming it."""
    with pytest.raises(ProtocolError, match="unknown @type 'BuyOrderExploded'"):
        decode(crypto, frame(frames.CRYPTOLOGY_CLOSED, **{"@type": "BuyOrderExploded"}))


def test_decoder_for_builds_a_cryptology_decoder() -> None:
    """decoder_for('cryptology', name) gives a fresh Cryptology decoder for that account."""
    decoder = decoder_for("cryptology", "acct")
    assert isinstance(decoder, CryptologyDecoder)
    assert (decoder.exchange, decoder.account) == ("cryptology", "acct")
