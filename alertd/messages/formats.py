"""How values read in a message: exact decimals, durations, the display timezone.

The same helpers serve alertd's own texts (``alert``, ``summary``) and the rules' templates
(``alertd.engine.expressions`` registers ``dec`` and ``duration`` as template helpers), so a
number reads the same in a default text and in a user's ``message``.
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
