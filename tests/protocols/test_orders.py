"""The order tracker's bounded memory, and the safety net around each decoder."""

import json
import logging
from datetime import UTC, datetime
from decimal import Decimal as D

import pytest

from alertd.events import OrderFilled
from alertd.protocols import BUG_REASON, ProtocolError
from alertd.protocols import piexgo as piexgo_module
from alertd.protocols.cryptology import CryptologyDecoder
from alertd.protocols.orders import (
    MAX_CLOSED_ORDERS,
    MAX_OPEN_ORDERS,
    OrderTracker,
    TrackedOrder,
    slippage,
)
from alertd.protocols.piexgo import PiexgoDecoder

from . import frames

RECEIVED = datetime(2024, 5, 1, tzinfo=UTC)


def placed(order_id: int) -> str:
    obj = json.loads(frames.CRYPTOLOGY_PLACED)
    obj["order_id"] = order_id
    return json.dumps(obj)


def closed(order_id: int) -> str:
    obj = json.loads(frames.CRYPTOLOGY_CLOSED)
    obj["order_id"] = order_id
    return json.dumps(obj)


def test_closed_ids_are_remembered_up_to_the_bound() -> None:
    """Memory stays flat: after 25,000 orders the tracker holds at most MAX_CLOSED_ORDERS
    closed ids and no open ones."""
    decoder = CryptologyDecoder("c")
    for order_id in range(25_000):
        decoder.decode(placed(order_id), RECEIVED)
        decoder.decode(closed(order_id), RECEIVED)
    assert decoder.orders.closed_count == MAX_CLOSED_ORDERS
    assert decoder.orders.open_count == 0


def test_recently_closed_orders_ignore_late_updates_until_forgotten() -> None:
    """With room for 2 closed ids, the newest two ignore a late Closed; the oldest, forgotten,
    is reported again as a fill of an unknown order."""
    decoder = CryptologyDecoder("c")
    decoder.orders = OrderTracker(max_closed=2)
    for order_id in (1, 2, 3):
        decoder.decode(placed(order_id), RECEIVED)
        decoder.decode(closed(order_id), RECEIVED)
    assert decoder.decode(closed(3), RECEIVED) == []
    assert decoder.decode(closed(2), RECEIVED) == []
    [again] = decoder.decode(closed(1), RECEIVED)
    assert isinstance(again, OrderFilled)
    assert (again.order_id, again.amount) == ("1", None)


def test_open_orders_are_bounded_oldest_first() -> None:
    """Past max_open, the oldest open order is forgotten and the newest kept."""
    tracker = OrderTracker(max_open=2)
    for order_id in ("a", "b", "c"):
        tracker.open(TrackedOrder(order_id, "BTC_USD", "buy", D(1), D(1), D(1)))
    assert (tracker.get("a"), tracker.get("c") is not None, tracker.open_count) == (None, True, 2)
    assert MAX_OPEN_ORDERS >= 1000  # far above any exchange's open-order limit


def test_slippage_needs_both_prices_and_a_nonzero_limit() -> None:
    """Slippage is None without a side, a limit, a fill, or with a zero limit."""
    assert slippage("buy", D(0), D(5)) is None
    assert slippage(None, D(1), D(2)) is None
    assert slippage("sell", D(1), None) is None
    assert slippage("sell", D(200), D(150)) == D("0.25")


def test_a_decoder_bug_costs_one_frame_not_the_stream(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """An unforeseen exception inside decoding becomes ProtocolError('decoder bug ...') and is
    logged with its traceback; the decoder keeps working."""

    def broken(*args: object, **kwargs: object) -> object:
        raise KeyError("oops")

    decoder = PiexgoDecoder("p")
    monkeypatch.setattr(piexgo_module, "_levels", broken)
    with caplog.at_level(logging.ERROR), pytest.raises(ProtocolError) as info:
        decoder.decode(frames.PIEXGO_DEPTH, RECEIVED)
    assert info.value.reason.startswith(BUG_REASON)
    assert "protocol.bug exchange=piexgo account=p" in caplog.text
    assert len(decoder.decode(frames.PIEXGO_BALANCE, RECEIVED)) == 1
