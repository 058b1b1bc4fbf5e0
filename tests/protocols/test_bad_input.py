"""Frames the decoders cannot read raise ProtocolError with a reason and an excerpt, and
nothing else; Hypothesis throws random and mutated frames at both decoders to show it."""

import json
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from alertd.events import Book, Event, OrderEvent, Trade
from alertd.protocols import BUG_REASON, ProtocolError
from alertd.protocols.cryptology import CryptologyDecoder
from alertd.protocols.piexgo import PiexgoDecoder

from . import frames

RECEIVED = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
DecoderFactory = Callable[[], PiexgoDecoder | CryptologyDecoder]
BOTH: list[tuple[DecoderFactory, list[str]]] = [
    (lambda: PiexgoDecoder("p"), frames.PIEXGO_RECEIVED),
    (lambda: CryptologyDecoder("c"), frames.CRYPTOLOGY_RECEIVED),
]
ALL_GOLDEN = [*frames.PIEXGO_RECEIVED, *frames.CRYPTOLOGY_RECEIVED]


def piexgo_order(**data: Any) -> str:
    obj = json.loads(frames.PIEXGO_ORDER)
    obj["data"].update(data)
    return json.dumps(obj)


def crypto(example: str, **changes: Any) -> str:
    obj = json.loads(example)
    obj.update(changes)
    return json.dumps(obj)


@pytest.mark.parametrize(
    ("make", "text", "reason"),
    [
        (PiexgoDecoder, "{not json", "not JSON"),
        (PiexgoDecoder, b"\xff\xfe", "not JSON"),
        (PiexgoDecoder, "[1, 2]", "not a JSON object but an array"),
        (PiexgoDecoder, '"pinfo"', "not a JSON object but a string"),
        (PiexgoDecoder, '{"topic":"kline"}', "unknown topic 'kline'"),
        (PiexgoDecoder, '{"topic":"pinfo","type":"trade","data":{}}', "unknown pinfo type"),
        (PiexgoDecoder, '{"topic":"pinfo","type":"order","data":[]}', "data must be an object"),
        (PiexgoDecoder, piexgo_order(volume=None), "data.volume must be a number, not null"),
        (PiexgoDecoder, piexgo_order(volume="NaN"), "data.volume must be a number, not 'NaN'"),
        (PiexgoDecoder, piexgo_order(volume="Infinity"), "must be a number"),
        (PiexgoDecoder, piexgo_order(volume="1_000"), "must be a number"),
        (PiexgoDecoder, piexgo_order(volume=" 1"), "must be a number"),
        (PiexgoDecoder, piexgo_order(volume="\u0661"), "must be a number"),  # Arabic-Indic one
        (PiexgoDecoder, piexgo_order(volume="1e999"), "data.volume is out of range"),
        (PiexgoDecoder, piexgo_order(volume=True), "must be a number, not a boolean"),
        (PiexgoDecoder, piexgo_order(amount="-5"), "data.amount must not be negative"),
        (PiexgoDecoder, piexgo_order(remain="2"), "data.remain 2 exceeds data.volume"),
        (PiexgoDecoder, piexgo_order(status=1), "data.status 1 is not 0 (open), 2"),
        (PiexgoDecoder, piexgo_order(status="2"), "data.status must be an integer"),
        (PiexgoDecoder, piexgo_order(type="short"), "data.type must be 'buy' or 'sell'"),
        (PiexgoDecoder, piexgo_order(timestamp=-1), "data.timestamp must be an integer >= 0"),
        (PiexgoDecoder, piexgo_order(timestamp=10**13), "is not a time in seconds"),
        (PiexgoDecoder, piexgo_order(order_id=None), "data.order_id must be an id"),
        (PiexgoDecoder, piexgo_order(market=""), "data.market must be a non-empty string"),
        (PiexgoDecoder, '{"op":"subscribe","status":"maybe"}', "status must be 'ok' or"),
        (PiexgoDecoder, '{"op":"ping"}', "unknown reply op 'ping'"),
        (CryptologyDecoder, '{"order_id": 1}', "unknown @type None"),
        (CryptologyDecoder, '{"@type": 7}', "unknown @type 7"),
        (
            CryptologyDecoder,
            crypto(frames.CRYPTOLOGY_PLACED, time=[946684800]),
            "time must be [seconds, microseconds]",
        ),
        (
            CryptologyDecoder,
            crypto(frames.CRYPTOLOGY_PLACED, time=[946684800, 1_000_000]),
            "time must be [seconds, microseconds]",
        ),
        (
            CryptologyDecoder,
            crypto(frames.CRYPTOLOGY_PLACED, closed_inline="no"),
            "closed_inline must be true or false",
        ),
        (CryptologyDecoder, crypto(frames.CRYPTOLOGY_PLACED, price="-1"), "price must not be"),
        (
            CryptologyDecoder,
            crypto(frames.CRYPTOLOGY_BOOK, buy_levels={"cheap": "1"}),
            "buy_levels price must be a number, not 'cheap'",
        ),
        (
            CryptologyDecoder,
            crypto(frames.CRYPTOLOGY_BOOK, sell_levels=[]),
            "sell_levels must be an object, not an array",
        ),
        (
            CryptologyDecoder,
            crypto(frames.CRYPTOLOGY_SET_BALANCE, reason=5),
            "reason must be a string",
        ),
        (CryptologyDecoder, '{"op":"subscribe","status":"ok"}', "unknown reply op"),
    ],
)
def test_unreadable_frames_raise_protocol_error_with_a_reason(
    make: type[PiexgoDecoder | CryptologyDecoder], text: str | bytes, reason: str
) -> None:
    """Each kind of unreadable frame raises ProtocolError whose reason says what is wrong."""
    with pytest.raises(ProtocolError) as info:
        make("x").decode(text, RECEIVED)
    assert reason in info.value.reason
    assert info.value.excerpt


def test_excerpt_is_short_for_huge_frames() -> None:
    """A huge bad frame is quoted by its first 200 characters only."""
    text = '{"topic":"kline","pad":"' + "x" * 100_000 + '"}'
    with pytest.raises(ProtocolError) as info:
        PiexgoDecoder("p").decode(text, RECEIVED)
    assert info.value.excerpt.startswith('{"topic":"kline"')
    assert len(info.value.excerpt) < 250


def test_deep_nesting_is_a_protocol_error() -> None:
    """A frame nested far beyond any real message is refused as not JSON, not a crash."""
    with pytest.raises(ProtocolError, match="not JSON"):
        CryptologyDecoder("c").decode("[" * 100_000, RECEIVED)


# -- Hypothesis -------------------------------------------------------------------------------

JSON_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8)
    | st.sampled_from(["NaN", "-1", "1e999", "0", "1.5", " 1", "-0", "buy", "sell", "BTC_USD"])
)
JSON_VALUES = st.recursive(
    JSON_SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner),
    max_leaves=12,
)

Path = tuple[Any, ...]


def paths(value: Any, prefix: Path = ()) -> list[Path]:
    """Every key/index path inside a decoded JSON value."""
    found: list[Path] = []
    if isinstance(value, dict):
        for key, child in value.items():
            found.append((*prefix, key))
            found.extend(paths(child, (*prefix, key)))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            found.append((*prefix, index))
            found.extend(paths(child, (*prefix, index)))
    return found


@st.composite
def mutated_frames(draw: st.DrawFn) -> str | bytes:
    """A golden frame with one of: a key dropped, a value swapped for any JSON value, the text
    truncated, or random bytes spliced in."""
    text = draw(st.sampled_from(ALL_GOLDEN))
    how = draw(st.sampled_from(["drop", "swap", "swap", "truncate", "splice"]))
    if how in ("drop", "swap"):
        path = draw(st.sampled_from(paths(json.loads(text))))
        if how == "drop":
            return replaced(text, path, drop=True)
        return replaced(text, path, draw(JSON_VALUES))
    if how == "truncate":
        return text[: draw(st.integers(0, len(text) - 1))]
    raw = text.encode()
    at = draw(st.integers(0, len(raw)))
    return raw[:at] + draw(st.binary(min_size=1, max_size=8)) + raw[at:]


def check_decode(make: DecoderFactory, warmup: list[str], frame: str | bytes) -> None:
    """Decode ``frame`` on a decoder that has seen ``warmup``: it returns well-formed events
    or raises ProtocolError that is not a decoder bug."""
    decoder = make()
    for golden in warmup:
        decoder.decode(golden, RECEIVED)
    try:
        events = decoder.decode(frame, RECEIVED)
    except ProtocolError as exc:
        assert not exc.reason.startswith(BUG_REASON), exc.reason
        return
    for event in events:
        assert_well_formed(event)


def assert_well_formed(event: Event) -> None:
    """What every consumer relies on: UTC times, finite non-negative Decimal amounts."""
    assert event.time.utcoffset() is not None
    amounts: list[Any] = []
    if isinstance(event, OrderEvent):
        amounts = [event.price, event.amount, event.remaining, event.filled, event.notional]
    elif isinstance(event, Trade):
        amounts = [event.price, event.amount]
    elif isinstance(event, Book):
        amounts = [x for level in (*event.bids, *event.asks) for x in level]
    for amount in amounts:
        assert amount is None or (isinstance(amount, Decimal) and amount.is_finite())
        assert amount is None or amount >= 0


FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
# Each example of the swap test decodes every path of every golden frame (~150 frames).
FUZZ_WIDE = settings(FUZZ, max_examples=60)


@FUZZ
@given(data=st.data())
def test_mutated_golden_frames_raise_only_protocol_error(data: st.DataObject) -> None:
    """Golden frames with keys dropped, types swapped, text truncated or bytes spliced in
    decode or raise ProtocolError, on fresh decoders and on ones mid-lifecycle."""
    frame = data.draw(mutated_frames())
    for make, golden in BOTH:
        warmup = data.draw(st.sampled_from([[], golden]))
        check_decode(make, warmup, frame)


@FUZZ
@given(frame=st.binary(max_size=200) | st.text(max_size=200))
def test_random_frames_raise_only_protocol_error(frame: str | bytes) -> None:
    """Random bytes and text never escape as anything but ProtocolError."""
    for make, _ in BOTH:
        check_decode(make, [], frame)


def replaced(text: str, path: Path, value: Any = None, *, drop: bool = False) -> str:
    """``text`` with the value at ``path`` replaced by ``value`` (or its key dropped)."""
    obj = json.loads(text)
    parent = obj
    for step in path[:-1]:
        parent = parent[step]
    if drop:
        del parent[path[-1]]
    else:
        parent[path[-1]] = value
    return json.dumps(obj)


@pytest.mark.parametrize(("make", "golden"), BOTH, ids=["piexgo", "cryptology"])
def test_every_field_dropped_raises_only_protocol_error(
    make: DecoderFactory, golden: list[str]
) -> None:
    """Dropping any single key anywhere in any golden frame decodes or raises ProtocolError."""
    for text in golden:
        for path in paths(json.loads(text)):
            for warmup in ([], golden):
                check_decode(make, warmup, replaced(text, path, drop=True))


@FUZZ_WIDE
@given(value=JSON_VALUES)
def test_every_field_swapped_for_random_json_raises_only_protocol_error(value: Any) -> None:
    """Any JSON value put in place of any field of any golden frame (so decoding gets as deep
    as it can) decodes or raises ProtocolError."""
    for make, golden in BOTH:
        for text in golden:
            for path in paths(json.loads(text)):
                check_decode(make, golden, replaced(text, path, value))
