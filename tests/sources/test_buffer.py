"""The per-account buffer between reader and forwarder: conflation, overflow gaps."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import trio

from alertd.events import BalanceChanged, Book, Event, StreamDisconnected, StreamGap, Trade
from alertd.sources.buffer import OutBuffer

T0 = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def book(symbol: str, bid: str, when: float = 0.0) -> Book:
    return Book(
        exchange="piexgo",
        account="main",
        time=at(when),
        received=at(when),
        symbol=symbol,
        bids=((Decimal(bid), Decimal(1)),),
        asks=(),
    )


def balance(value: int, when: float = 0.0) -> BalanceChanged:
    return BalanceChanged(
        exchange="piexgo",
        account="main",
        time=at(when),
        received=at(when),
        currency="BTC",
        balance=Decimal(value),
    )


def trade(when: float = 0.0) -> Trade:
    return Trade(
        exchange="piexgo",
        account="main",
        time=at(when),
        received=at(when),
        symbol="BTC_USDT",
        price=Decimal(1),
        amount=Decimal(1),
    )


def drain(buf: OutBuffer) -> list[Event]:
    out: list[Event] = []

    async def take() -> None:
        while len(buf) or buf._overflow:
            out.append(await buf.get())

    trio.run(take)
    return out


def test_books_conflate_to_the_latest_per_symbol_in_place() -> None:
    """Waiting books of one symbol collapse into the newest, keeping the first one's place."""
    buf = OutBuffer(exchange="piexgo", account="main", capacity=10)
    buf.put(book("BTC_USDT", "1"))
    buf.put(balance(1))
    buf.put(book("BTC_USDT", "2"))
    buf.put(book("ETH_USDT", "9"))
    buf.put(book("BTC_USDT", "3"))
    out = drain(buf)
    assert [type(e).__name__ for e in out] == ["Book", "BalanceChanged", "Book"]
    first = out[0]
    assert isinstance(first, Book) and first.symbol == "BTC_USDT"
    assert first.bids[0][0] == Decimal(3)
    assert buf.conflated == 2


def test_books_do_not_use_capacity() -> None:
    """A full buffer of account events still takes the latest book of a new symbol."""
    buf = OutBuffer(exchange="piexgo", account="main", capacity=1)
    assert buf.put(balance(1))
    assert buf.put(book("BTC_USDT", "1"))
    assert buf.dropped == 0


def test_overflow_becomes_a_gap_with_the_dropped_window() -> None:
    """Events that do not fit are reported as one stream.gap (why overflow) spanning them."""
    buf = OutBuffer(exchange="piexgo", account="main", capacity=2)
    assert buf.put(balance(1, 0), stream="pinfo")
    assert buf.put(balance(2, 1), stream="pinfo")
    assert not buf.put(balance(3, 2), stream="pinfo")
    assert not buf.put(balance(4, 3), stream="pinfo")
    out = drain(buf)
    assert [e.kind for e in out] == ["balance.changed", "balance.changed", "stream.gap"]
    gap = out[2]
    assert isinstance(gap, StreamGap)
    assert (gap.why, gap.stream, gap.since, gap.until) == ("overflow", "pinfo", at(2), at(3))
    assert gap.raw == {"dropped": 2}
    assert buf.dropped == 2


def test_gap_goes_ahead_of_the_next_accepted_event() -> None:
    """Once there is room again, the gap is queued before the event that found room."""

    async def main() -> list[Event]:
        buf = OutBuffer(exchange="piexgo", account="main", capacity=1)
        buf.put(balance(1, 0), stream="pinfo")
        buf.put(trade(1), stream="dealinfo.btc_usdt")
        out = [await buf.get()]
        buf.put(balance(5, 2), stream="pinfo")
        out.append(await buf.get())
        out.append(await buf.get())
        return out

    out = trio.run(main)
    assert [e.kind for e in out] == ["balance.changed", "stream.gap", "balance.changed"]
    gap = out[1]
    assert isinstance(gap, StreamGap) and gap.stream == "dealinfo.btc_usdt"


def test_sustained_overload_gives_one_gap_per_episode() -> None:
    """A consumer that stays behind gets one gap for the whole episode, not one per drop:
    after an overflow the buffer keeps dropping until it has drained to half."""

    async def main() -> list[Event]:
        buf = OutBuffer(exchange="piexgo", account="main", capacity=10)
        out: list[Event] = []
        for i in range(300):  # the reader puts two events for each one the consumer takes
            buf.put(balance(i, i), stream="pinfo")
            buf.put(balance(i, i + 0.5), stream="pinfo")
            out.append(await buf.get())
        while len(buf) or buf._overflow:
            out.append(await buf.get())
        return out

    out = trio.run(main)
    gaps = [e for e in out if isinstance(e, StreamGap)]
    delivered = len(out) - len(gaps)
    assert sum(g.raw["dropped"] for g in gaps) + delivered == 600  # every loss is reported
    # each gap stands for at least half a buffer of drops (a gap per drop would be ~150)
    assert all(g.raw["dropped"] >= 5 for g in gaps[:-1])  # the last one ends with the loop
    assert len(gaps) <= delivered // 5


def test_connection_facts_are_never_dropped() -> None:
    """Unbounded puts (connection facts) are taken even when the buffer is full."""
    buf = OutBuffer(exchange="piexgo", account="main", capacity=1)
    buf.put(balance(1))
    fact = StreamDisconnected(
        exchange="piexgo", account="main", time=T0, received=T0, stream="*", reason="x"
    )
    assert buf.put(fact, bounded=False)
    out = drain(buf)
    assert out[-1] is fact
    assert buf.dropped == 0


async def test_get_waits_for_a_put() -> None:
    """A forwarder waiting on an empty buffer wakes up when the reader puts an event."""
    buf = OutBuffer(exchange="piexgo", account="main", capacity=4)
    got: list[Event] = []

    async def forwarder() -> None:
        got.append(await buf.get())

    with trio.fail_after(2):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(forwarder)
            await trio.sleep(0.01)
            assert got == []
            buf.put(balance(7))
    assert got == [balance(7)]
