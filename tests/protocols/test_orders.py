"""The order tracker's bounded memory, and the safety net around each decoder."""

import json
import logging
import tracemalloc
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
    closed_key,
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


def test_closed_order_memory_per_account_is_small_at_its_bound() -> None:
    """An account's closed-order memory, full and churning (5x its bound of 19-digit Piexgo
    ids), holds exactly MAX_CLOSED_ORDERS ids in under 140 bytes each and 140 KiB in all
    (50 accounts: under 7 MiB; it was 1.3-1.6 MiB per account)."""
    first = 1136203593297424385  # a Piexgo order id from its document
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        tracker = OrderTracker()
        for i in range(5 * MAX_CLOSED_ORDERS):
            tracker.close(str(first + 7 * i))  # a fresh string each time, as decoding gives
        used = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert tracker.closed_count == MAX_CLOSED_ORDERS
    assert tracker.is_closed(str(first + 7 * (5 * MAX_CLOSED_ORDERS - 1)))
    assert not tracker.is_closed(str(first + 7 * (4 * MAX_CLOSED_ORDERS - 1)))
    assert used / MAX_CLOSED_ORDERS < 140
    assert used < 140 * 1024


def test_closed_ids_that_read_alike_stay_distinct() -> None:
    """Only canonical decimal ids become ints: '007', a non-ASCII digit and a text id are
    other orders than '7', and a text id is remembered like a numeric one."""
    tracker = OrderTracker()
    for order_id in ("007", "\u0667", "7a", "abc-1"):
        tracker.close(order_id)
    assert not tracker.is_closed("7")
    assert [tracker.is_closed(i) for i in ("007", "\u0667", "7a", "abc-1")] == [True] * 4
    assert not tracker.is_closed("abc-2")
    assert closed_key("1136203593297424385") == 1136203593297424385
    assert closed_key("0") == 0
    assert all(closed_key(i) < 0 for i in ("007", "\u0667", "abc-1", "1" * 21))


def test_closing_twice_keeps_one_entry() -> None:
    """Closing an id again (a repeated final frame) takes no second place in the memory, so
    it does not push a newer id out."""
    tracker = OrderTracker(max_closed=2)
    for order_id in ("1", "2", "2", "2"):
        tracker.close(order_id)
    assert (tracker.closed_count, tracker.is_closed("1"), tracker.is_closed("2")) == (2, True, True)


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
