"""Reading exchange JSON strictly: one frame to one object, and typed fields out of it.

Every helper here raises ``ProtocolError`` (never ``KeyError``/``TypeError``/``decimal``
errors), naming the field, so the exchange modules can read a frame as a straight line of
``get_*`` calls and stay inside the contract of ``Decoder.decode``.

JSON floats are decoded by msgspec with ``float_hook=Decimal``: ``3990.67`` becomes
``Decimal("3990.67")`` exactly as written, never through a binary float.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from decimal import Context, Decimal, DivisionByZero, InvalidOperation, Overflow
from typing import Any

import msgspec

from alertd.events import normalize_symbol
from alertd.protocols import ProtocolError

_DECODER = msgspec.json.Decoder(float_hook=Decimal)

# Decimal() alone would also take "1_000", " 1 ", "Infinity" and non-ASCII digits; an exchange
# that sends any of those is not sending what its document shows, so we refuse them.
_NUMBER = re.compile(r"-?[0-9]+(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?")

# A plain non-negative decimal within MAX_MAGNITUDE: the common case, read without checks
# (``Reader.number``, and the fast paths of the decoders, which accept only what it accepts).
plain_number = re.compile(r"[0-9]{1,31}(?:\.[0-9]{1,30})?").fullmatch

# Largest and smallest magnitudes accepted (as powers of ten). Real amounts stay well inside
# 1e-30..1e30; the bound keeps "1e999999999" from overflowing arithmetic later.
MAX_MAGNITUDE = 30

# Context for order arithmetic (filled = amount - remaining, and so on): 80 digits keep every
# sum and difference of real amounts exact (the default context keeps only 28); the traps turn
# anything unexpected into an exception rather than a silent NaN.
EXACT = Context(prec=80, traps=[InvalidOperation, DivisionByZero, Overflow])
# Ratios (slippage) are inexact by nature; 12 significant digits read well in a message.
RATIO = Context(prec=12, traps=[InvalidOperation, DivisionByZero, Overflow])

ZERO = Decimal(0)


def sub(a: Decimal, b: Decimal) -> Decimal:
    """``a - b`` exactly; a zero result is plain ``0`` (not ``0E-8``, which reads badly in a
    message)."""
    return EXACT.subtract(a, b) or ZERO


def mul(a: Decimal, b: Decimal) -> Decimal:
    return EXACT.multiply(a, b) or ZERO


# Raw symbol -> normalized symbol. An account trades a handful of markets, so this stays tiny;
# the bound (cleared when reached) only guards against a stream of made-up symbols.
MAX_CACHED_SYMBOLS = 1024
_SYMBOLS: dict[str, str] = {}
# The normalized form of a raw symbol ``Reader.symbol`` has already accepted, else None: what a
# decoder's fast path may use without checks (the cache only ever holds accepted symbols).
cached_symbol = _SYMBOLS.get

# Plain number strings -> their Decimal (``plain_decimal``); bounded like the symbols.
MAX_CACHED_DECIMALS = 4096
_DECIMALS: dict[str, Decimal] = {}

# Whole seconds -> their time (``seconds_time``); bounded like the symbols.
MAX_CACHED_TIMES = 1024
_TIMES: dict[int, datetime] = {}

_MILLIS = [timedelta(0, 0, 0, ms) for ms in range(1000)]  # the millisecond steps of a second

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MAX_SECONDS = 253_402_300_799  # 9999-12-31T23:59:59Z, the last second datetime can hold
MAX_MILLIS = MAX_SECONDS * 1000

Obj = dict[str, Any]


def load_object(frame: str | bytes) -> Obj:
    """The JSON object in ``frame``; ``ProtocolError`` for anything else."""
    try:
        value = _DECODER.decode(frame)
    except (msgspec.DecodeError, UnicodeError, RecursionError) as exc:
        raise ProtocolError(f"not JSON ({exc})", frame) from None
    if not isinstance(value, dict):
        raise ProtocolError(f"not a JSON object but {type_name(value)}", frame)
    return value


def type_name(value: object) -> str:
    """The JSON name of a decoded value's type, for error messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | Decimal):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"


def plain_decimal(value: object) -> Decimal | None:
    """``value`` as a Decimal (any zero as ``ZERO``) when it is a plain number string (see
    ``plain_number``), else None. Remembered: the same strings recur (zeros, an order's limit
    and quantity in each of its updates, a market's price levels), and a lookup is a quarter
    of the cost of the pattern and ``Decimal`` (bench/decode.py)."""
    if type(value) is not str:
        return None
    number = _DECIMALS.get(value)
    if number is None and plain_number(value) is not None:
        number = Decimal(value) or ZERO
        if len(_DECIMALS) >= MAX_CACHED_DECIMALS:
            _DECIMALS.clear()
        _DECIMALS[value] = number
    return number


def seconds_time(seconds: int) -> datetime:
    """The UTC time ``seconds`` (0..MAX_SECONDS) after the epoch. Remembered: every update of
    an order repeats the second it was made in (Piexgo's ``timestamp``)."""
    time = _TIMES.get(seconds)
    if time is None:
        time = datetime.fromtimestamp(seconds, UTC)  # exact for integers, and fastest
        if len(_TIMES) >= MAX_CACHED_TIMES:
            _TIMES.clear()
        _TIMES[seconds] = time
    return time


def millis_time(millis: int) -> datetime:
    """The UTC time ``millis`` (0..MAX_MILLIS) milliseconds after the epoch, exactly: what
    ``EPOCH + timedelta(milliseconds=millis)`` gives, at a third of its cost (the second from
    ``seconds_time``, whose cache trades of the same second share, plus one of 1,000 steps)."""
    return seconds_time(millis // 1000) + _MILLIS[millis % 1000]


class Reader:
    """Typed access to one frame's fields; errors name the field path and quote the frame."""

    __slots__ = ("frame",)

    def __init__(self, frame: str | bytes) -> None:
        self.frame = frame

    def fail(self, reason: str) -> ProtocolError:
        return ProtocolError(reason, self.frame)

    def field(self, obj: Obj, key: str, where: str) -> Any:
        try:
            return obj[key]
        except KeyError:
            raise self.fail(f"{where}{key} is missing") from None

    def obj(self, obj: Obj, key: str, where: str = "") -> Obj:
        value = self.field(obj, key, where)
        if not isinstance(value, dict):
            raise self.fail(f"{where}{key} must be an object, not {type_name(value)}")
        return value

    def array(self, obj: Obj, key: str, where: str = "") -> list[Any]:
        value = self.field(obj, key, where)
        if not isinstance(value, list):
            raise self.fail(f"{where}{key} must be an array, not {type_name(value)}")
        return value

    def text(self, obj: Obj, key: str, where: str = "") -> str:
        value = self.field(obj, key, where)
        if not isinstance(value, str) or not value:
            raise self.fail(f"{where}{key} must be a non-empty string, not {value!r}")
        return value

    def opt_text(self, obj: Obj, key: str, where: str = "") -> str | None:
        """A string, or None when absent or null."""
        value = obj.get(key)
        if value is None:
            return None
        if not isinstance(value, str):
            raise self.fail(f"{where}{key} must be a string, not {type_name(value)}")
        return value

    def boolean(self, obj: Obj, key: str, where: str = "") -> bool:
        value = self.field(obj, key, where)
        if not isinstance(value, bool):
            raise self.fail(f"{where}{key} must be true or false, not {value!r}")
        return value

    def integer(self, obj: Obj, key: str, where: str = "", *, low: int = 0) -> int:
        value = self.field(obj, key, where)
        if type(value) is not int or value < low:
            raise self.fail(f"{where}{key} must be an integer >= {low}, not {value!r}")
        return value

    def ident(self, obj: Obj, key: str, where: str = "") -> str:
        """An identifier sent as a JSON integer or string, as a string."""
        value = self.field(obj, key, where)
        return self.ident_value(value, key, where)

    def opt_ident(self, obj: Obj, key: str, where: str = "") -> str | None:
        value = obj.get(key)
        return None if value is None else self.ident_value(value, key, where)

    def ident_value(self, value: Any, key: str, where: str) -> str:
        if type(value) is int:
            return str(value)
        if isinstance(value, str) and value:
            return value
        raise self.fail(f"{where}{key} must be an id (integer or string), not {value!r}")

    def symbol(self, obj: Obj, key: str, where: str = "") -> str:
        raw = obj.get(key)
        symbol = _SYMBOLS.get(raw) if type(raw) is str else None
        if symbol is not None:
            return symbol
        raw = self.text(obj, key, where)
        symbol = normalize_symbol(raw)
        if not symbol or len(symbol) > 40:
            raise self.fail(f"{where}{key} is not a trading symbol: {raw!r}")
        if len(_SYMBOLS) >= MAX_CACHED_SYMBOLS:
            _SYMBOLS.clear()
        _SYMBOLS[raw] = symbol
        return symbol

    def number(self, obj: Obj, key: str, where: str = "", *, signed: bool = False) -> Decimal:
        """A finite decimal sent as a JSON number or numeric string; non-negative unless
        ``signed``. Any zero reads as ``0``."""
        value = obj.get(key)
        # Fast path for what exchanges send nearly always ("7831.16000000"): the pattern
        # already guarantees finite, non-negative and in range. This keeps an order frame's
        # five numbers cheap enough for the 100,000 frames/s target (bench/decode.py).
        number = plain_decimal(value) if type(value) is str else None  # no call for JSON floats
        if number is not None:
            return number
        if value is None and key not in obj:
            raise self.fail(f"{where}{key} is missing")
        return self.number_value(value, key, where, signed=signed)

    def number_value(self, value: Any, key: str, where: str, *, signed: bool = False) -> Decimal:
        if isinstance(value, str):
            if _NUMBER.fullmatch(value) is None:
                raise self.fail(f"{where}{key} must be a number, not {value!r}")
            number = Decimal(value)
        elif isinstance(value, Decimal):  # a JSON float, via float_hook
            number = value
        elif type(value) is int:
            number = Decimal(value)
        else:
            raise self.fail(f"{where}{key} must be a number, not {type_name(value)}")
        if number.is_zero():
            return ZERO  # "-0" and "0.00000000" alike, which print as "-0" and "0E-8"
        if not -MAX_MAGNITUDE <= number.adjusted() <= MAX_MAGNITUDE:
            raise self.fail(f"{where}{key} is out of range: {value!r}")
        if number.is_signed() and not signed:
            raise self.fail(f"{where}{key} must not be negative: {value!r}")
        return number

    def unix_seconds(self, obj: Obj, key: str, where: str = "") -> datetime:
        seconds = obj.get(key)
        if type(seconds) is int and 0 <= seconds <= MAX_SECONDS:  # the common case, quickly
            return seconds_time(seconds)
        seconds = self.integer(obj, key, where)
        if seconds > MAX_SECONDS:
            raise self.fail(f"{where}{key} is not a time in seconds: {seconds!r}")
        return seconds_time(seconds)

    def unix_millis(self, obj: Obj, key: str, where: str = "") -> datetime:
        millis = self.integer(obj, key, where)
        if millis > MAX_MILLIS:
            raise self.fail(f"{where}{key} is not a time in milliseconds: {millis!r}")
        return millis_time(millis)

    def seconds_micros(self, obj: Obj, key: str, where: str = "") -> datetime:
        """A ``[seconds, microseconds]`` pair (Cryptology) as an exact UTC time."""
        pair = self.field(obj, key, where)
        if (
            not isinstance(pair, list)
            or len(pair) != 2
            or type(pair[0]) is not int
            or type(pair[1]) is not int
            or not 0 <= pair[0] <= MAX_SECONDS
            or not 0 <= pair[1] < 1_000_000
        ):
            raise self.fail(f"{where}{key} must be [seconds, microseconds], not {pair!r}")
        return EPOCH + timedelta(0, pair[0], pair[1])
