"""Reading Piexgo's balance snapshot (the balance frames right after the pinfo ack)."""

from __future__ import annotations

import json
from decimal import Decimal

from alertd.sources.snapshot import SnapshotReader

from .helpers import balance_frame, deal_frame

ACK = json.dumps({"op": "subscribe", "topic": "pinfo", "status": "ok"})


def test_snapshot_is_the_balance_run_after_the_ack() -> None:
    """Balances before the ack are ignored; the run after it ends at the next other frame."""
    reader = SnapshotReader()
    reader.feed(balance_frame("BTC", "9"))
    reader.feed(ACK)
    reader.feed(balance_frame("btc", "1.50"))
    reader.feed(balance_frame("USDT", "10"))
    assert not reader.done
    reader.feed(deal_frame())
    reader.feed(balance_frame("ETH", "3"))
    assert reader.done
    assert reader.balances == {"BTC": Decimal("1.50"), "USDT": Decimal(10)}


def test_a_repeated_token_is_live_activity() -> None:
    """A second frame for a token already in the snapshot ends it and is not taken."""
    reader = SnapshotReader()
    reader.feed(ACK)
    reader.feed(balance_frame("BTC", "1"))
    reader.feed(balance_frame("BTC", "2"))
    assert reader.done
    assert reader.balances == {"BTC": Decimal(1)}


def test_garbage_ends_the_snapshot_without_raising() -> None:
    """A malformed frame or value ends the snapshot; the decoder is the one to report it."""
    for bad in ("{oops", balance_frame("BTC", "not-a-number"), "[1]"):
        reader = SnapshotReader()
        reader.feed(ACK)
        reader.feed(bad)
        assert reader.done and reader.balances == {}
