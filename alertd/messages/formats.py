"""How values read in a message: exact decimals, durations, the display timezone.

The same helpers serve alertd's own texts (``alert``, ``summary``) and the rules' templates
(``alertd.engine.expressions`` registers ``dec``, ``num``, ``pct``, ``bps`` and ``duration``
as template helpers), so a number reads the same in a default text and in a user's
``message``. Every helper shows a missing value (``None``: Cryptology reports no fill price,
hence no slippage) as ``-``, never as ``None``, and never writes an exponent.
"""

from __future__ import annotations

import math
from datetime import UTC, tzinfo
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError


def to_decimal(value: Any) -> Decimal:
    """A Decimal from what an expression may produce; floats go through their shortest repr
    so ``0.1`` becomes ``Decimal("0.1")``, not its binary expansion."""
    if isinstance(value, Decimal):
        return value
    if isinstance(value, bool):
        raise TypeError("a boolean is not a number")
    if isinstance(value, int):
        return Decimal(value)
    if isinstance(value, float):
        return Decimal(repr(value))
    if isinstance(value, str):
        try:
            return Decimal(value.strip())
        except InvalidOperation:
            raise ValueError(f"{value!r} is not a number") from None
    raise TypeError(f"{type(value).__name__} is not a number")


def dec(value: Any, places: int | None = None) -> str:
    """Plain-text Decimal: ``dec(D("1.500"))`` is ``1.5``, ``dec(x, 2)`` rounds half-even."""
    if value is None:
        return "-"
    d = to_decimal(value)
    if places is not None:
        d = d.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_EVEN)
        return f"{d:f}"
    if d == d.to_integral_value():
        return f"{d.quantize(Decimal(1)):f}"
    return f"{d.normalize():f}"


def num(value: Any, places: int | None = None) -> str:
    """``dec`` with thousands separators: ``num(D("46294.884"), 2)`` is ``46,294.88``."""
    text = dec(value, places)
    if text == "-":
        return text
    sign, digits = ("-", text[1:]) if text.startswith("-") else ("", text)
    whole, dot, fraction = digits.partition(".")
    return f"{sign}{int(whole):,}{dot}{fraction}"


def pct(fraction: Any, places: int = 2) -> str:
    """A fraction as a percentage: ``pct(D("-0.000393"))`` is ``-0.04%``."""
    if fraction is None:
        return "-"
    return dec(to_decimal(fraction) * 100, places) + "%"


def bps(fraction: Any, places: int = 1) -> str:
    """A fraction in basis points (hundredths of a percent), the unit slippage is read in:
    ``bps(D("-0.0000175"))`` is ``-0.2 bp``."""
    if fraction is None:
        return "-"
    return dec(to_decimal(fraction) * 10_000, places) + " bp"


def duration(seconds: Any) -> str:
    """Human duration, the two largest units: ``7500`` -> ``2h 5m``, ``42`` -> ``42s``;
    under ten seconds with a tenth: ``0.42`` -> ``0.4s``."""
    if seconds is None:
        return "-"
    value = float(seconds)
    if value < 0:
        return "-" + duration(-value)
    if value < 10 and value != math.floor(value):
        # a reconnect or a fill latency is often under a second: "0s" would hide it
        return f"{value:.1f}s"
    total = math.floor(value)
    parts: list[str] = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        n, total = divmod(total, size)
        if n:
            parts.append(f"{n}{unit}")
    return " ".join(parts[:2]) if parts else "0s"


def zone(name: str) -> tzinfo:
    """The timezone ``name`` (``[daemon] timezone``) that message times are shown in; UTC
    when the name is unknown, a last resort only: every config load refuses such a name."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return UTC
