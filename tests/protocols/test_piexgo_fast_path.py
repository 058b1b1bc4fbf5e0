"""Piexgo's fast path: the decoder gives exactly what its Reader-only reference gives, frame
by frame (events with their types, values and ``raw``, or the same ProtocolError reason)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from alertd.protocols import ProtocolError
from alertd.protocols._json import (
    EPOCH,
    MAX_MILLIS,
    MAX_SECONDS,
    Reader,
    load_object,
    millis_time,
    seconds_time,
)
from alertd.protocols.piexgo import PiexgoDecoder
from alertd.protocols.piexgo_read import (
    fast_balance,
    fast_deals,
    fast_order,
    read_balance,
    read_deals,
    read_order,
)
from alertd.simulator.activity import Activity
from alertd.simulator.frames import piexgo_frames

from . import frames as documents

RECEIVED = datetime(2026, 1, 1, 0, 0, 1, tzinfo=UTC)
START_US = 1_767_225_600_000_000  # 2026-01-01, the benchmark recording's epoch


class ReferenceDecoder(PiexgoDecoder):
    """Every frame through the Reader-based readers."""

    fast: ClassVar[bool] = False


def simulated(seed: int, count: int) -> list[str]:
    """The first ``count`` order, balance and deals frames the simulator sends for ``seed``."""
    activity = Activity.for_exchange("piexgo", seed=seed, start_us=START_US)
    out: list[str] = []
    while len(out) < count:
        for fact in activity.step():
            for topic, frame in piexgo_frames(fact, len(out)):
                if topic == "pinfo" or topic.startswith("dealinfo."):
                    out.append(frame)
    return out[:count]


DOCUMENT_FRAMES = [documents.PIEXGO_ORDER, documents.PIEXGO_BALANCE, documents.PIEXGO_DEALINFO]

# Values a mutation puts in place of a field: what a fast check could get wrong.
ODD: list[Any] = [
    *["1_000", " 1", "1 ", "1e5", "1E-5", "-0", "-1", "-1.5", "+1", ".5", "5.", "1.2.3", ""],
    *["NaN", "-NaN", "sNaN", "Infinity", "inf", "0x10", "١٢", "²", "1\n", "0", "00", "0.0"],
    *["9" * 31, "9" * 32, "1." + "0" * 30, "1." + "0" * 31, "0.00000000", "0.000000001"],
    *["1" + "0" * 30, "0." + "0" * 29 + "1", "12345678.12345678", "2.99000000", "3.00000000"],
    *[0, 1, 2, 3, 4, 5, -1, -5, 10**19, 10**20, 10**40, 1.5, 0.0, -0.0, 1e40, 1e-40],
    *[True, False, None, [], {}, [1], {"a": 1}],
    *["buy", "sell", "BUY", "Buy", " buy", "balance", "order", "pinfo", "dealinfo", "depth"],
    *["btc_usdt", "BTC_USDT", "BTC-USDT", " eth_usdt ", "eth/usdt", "x" * 41, "-", " "],
    *["1136203593297424385", "001", "abc", 1136203593297424385, "BTC", " usdt "],
    *[1559734776, 253_402_300_799, 253_402_300_800, 1553326491272, 253_402_300_799_000],
    253_402_300_800_000,
]


def variants(value: Any) -> list[Any]:
    """Values near ``value``: the same number written differently, or a little larger."""
    if isinstance(value, str):
        return [value + "1", value + "0", "0" + value, " " + value, value + " ", "-" + value]
    if isinstance(value, int) and not isinstance(value, bool):
        return [value + 1, value - 1, -value, str(value), value * 1000, float(value), True]
    return []


def _containers(obj: dict[str, Any]) -> list[dict[str, Any]]:
    """The objects of a frame a mutation can change: the frame, its data, each deal."""
    out = [obj]
    if isinstance(obj.get("data"), dict):
        out.append(obj["data"])
    if isinstance(obj.get("deals"), list):
        out.extend(d for d in obj["deals"] if isinstance(d, dict))
    return out


@st.composite
def mutated(draw: st.DrawFn, frame: str) -> str:
    """``frame`` with a few fields dropped, replaced or added, or its deals cut or repeated."""
    obj = json.loads(frame)
    for _ in range(draw(st.integers(1, 3))):
        action = draw(st.sampled_from(["replace", "replace", "drop", "add", "deals"]))
        target = draw(st.sampled_from(_containers(obj)))
        keys = sorted(target)
        if action == "deals" and isinstance(obj.get("deals"), list):
            deals = obj["deals"]
            obj["deals"] = draw(st.sampled_from([[], deals[:1], deals[:2], deals * 2, deals[:3]]))
        elif action == "add":
            target[draw(st.sampled_from(["op", "status", "type", "data", "msg"]))] = draw(
                st.sampled_from(ODD)
            )
        elif keys and action == "drop":
            del target[draw(st.sampled_from(keys))]
        elif keys:
            key = draw(st.sampled_from(keys))
            near = variants(target[key])
            odd = st.sampled_from(ODD)
            target[key] = draw(st.one_of(st.sampled_from(near), odd) if near else odd)
    return json.dumps(obj, ensure_ascii=draw(st.booleans()))


@st.composite
def sequences(draw: st.DrawFn) -> list[str]:
    """Simulated frames (orders walking their lifecycles) and the documents' examples, some
    mutated, some sent again later (repeated updates after a close)."""
    base = simulated(draw(st.integers(0, 10_000)), draw(st.integers(1, 25)))
    base += draw(st.lists(st.sampled_from(DOCUMENT_FRAMES), max_size=2))
    out: list[str] = []
    for frame in base:
        kind = draw(st.sampled_from(["same", "mutated", "mutated", "again"]))
        if kind == "mutated":
            out.append(draw(mutated(frame)))
        elif kind == "again" and out:
            out.append(draw(st.sampled_from(out)))
        out.append(frame)
    return out


def outcome(decoder: PiexgoDecoder, frame: str) -> tuple[str, Any]:
    """What decoding ``frame`` gave, in a form that compares everything: each event's type
    and the repr of every field (so ``Decimal('1.50')`` differs from ``Decimal('1.5')``),
    ``raw`` included; or the error's reason."""
    try:
        got = decoder.decode(frame, RECEIVED)
    except ProtocolError as exc:
        return "error", exc.reason
    return "events", [(type(e), {k: repr(v) for k, v in vars(e).items()}) for e in got]


def assert_same(frames: list[str]) -> None:
    reference, fast = ReferenceDecoder("main"), PiexgoDecoder("main")
    for i, frame in enumerate(frames):
        # The reference goes first: symbols it accepts are the ones the fast path may take.
        expected = outcome(reference, frame)
        assert outcome(fast, frame) == expected, f"frame {i}: {frame}"
    assert fast.balances == reference.balances
    assert fast.orders.open_count == reference.orders.open_count
    assert fast.orders.closed_count == reference.orders.closed_count


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(sequences())
def test_fast_path_decodes_mutated_sequences_as_the_reference(frames: list[str]) -> None:
    """Any sequence of valid and mutated frames decodes to the same events or errors."""
    assert_same(frames)


def test_fast_path_decodes_a_simulated_flood_as_the_reference() -> None:
    """A flood like the benchmark's recording (two seeds, 3,000 frames) decodes identically."""
    assert_same(simulated(1, 1500) + simulated(2, 1500))


def test_fast_readers_take_every_simulated_frame() -> None:
    """Every order, balance and deals frame the simulator sends is read by the fast readers
    to the Reader-based readers' values, so the flood never needs the slow path."""
    kinds = set()
    for frame in simulated(3, 2000) + DOCUMENT_FRAMES:
        obj = load_object(frame)
        r = Reader(frame)
        # The Reader-based reader goes first: symbols it accepts are the ones fast_* may take.
        if obj["topic"] == "dealinfo":
            kinds.add("deals")
            expected: Any = read_deals(r, obj)
            got: Any = fast_deals(obj)
        elif obj["type"] == "order":
            kinds.add("order")
            expected, got = read_order(r, obj["data"]), fast_order(obj["data"])
        else:
            kinds.add("balance")
            expected, got = read_balance(r, obj["data"]), fast_balance(obj["data"])
        assert repr(got) == repr(expected), frame
    assert kinds == {"deals", "order", "balance"}


def _order_steps(seed: int) -> list[list[str]]:
    """Simulated order frames grouped by order, in lifecycle order (placed ... closed)."""
    steps: dict[str, list[str]] = {}
    for frame in simulated(seed, 400):
        obj = json.loads(frame)
        if obj.get("type") == "order":
            steps.setdefault(obj["data"]["order_id"], []).append(frame)
    return list(steps.values())


def _bases() -> list[tuple[list[str], str]]:
    """(frames sent before, frame to change): every order step after the steps before it,
    a balance after one for the same token, deals frames, and the documents' examples."""
    out: list[tuple[list[str], str]] = []
    orders, closes = [], set()
    for order in _order_steps(4):  # one filled after partial fills, one cancelled after one
        close = json.loads(order[-1])["data"]["status"]
        if len(order) > 2 and close not in closes:
            closes.add(close)
            orders.append(order)
    for order in orders:
        out.extend((order[:i], step) for i, step in enumerate(order))
    balances = [f for f in simulated(5, 60) if '"balance"' in f][:2]
    deals = [f for f in simulated(5, 60) if '"dealinfo"' in f][:2]
    others = balances + deals
    out.extend(([], f) for f in others + DOCUMENT_FRAMES)
    out.extend(([f], f) for f in others if '"balance"' in f)
    return out


def test_every_single_field_change_decodes_as_the_reference() -> None:
    """Each field of each kind of frame dropped, or replaced by each odd value or a value
    near its own, decodes to the same events or error with and without the fast path."""
    checked = 0
    for before, frame in _bases():
        obj = json.loads(frame)
        for index, target in enumerate(_containers(obj)):
            for key in sorted(target):
                for value in [*ODD, *variants(target[key]), "drop"]:
                    changed = json.loads(frame)
                    where = _containers(changed)[index]
                    if value == "drop":
                        del where[key]
                    else:
                        where[key] = value
                    assert_same([*before, json.dumps(changed), frame])
                    checked += 1
    assert checked > 10_000


@settings(max_examples=300, deadline=None)
@given(st.integers(0, MAX_MILLIS) | st.sampled_from([0, 999, 1000, MAX_MILLIS]))
def test_times_are_exact(millis: int) -> None:
    """Deal and order times (cached or not) are exactly the epoch plus the milliseconds or
    seconds sent, in UTC."""
    assert millis_time(millis) == EPOCH + timedelta(milliseconds=millis)
    assert millis_time(millis).tzinfo is UTC
    seconds = millis // 1000
    assert seconds <= MAX_SECONDS
    assert seconds_time(seconds) == seconds_time(seconds) == EPOCH + timedelta(seconds=seconds)
    assert seconds_time(seconds).tzinfo is UTC
