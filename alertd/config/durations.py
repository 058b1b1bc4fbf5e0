"""Durations as people write them in the TOML file: "30s", "5m", "4h", "1d", "1h30m", "500ms".

Hand-written because it is one regular expression and the error message matters more than the
parser: "5 mins" gets a hint ("use "5m""), which no library offers.
"""

from __future__ import annotations

import math
import re
from decimal import Decimal

from alertd.config.model import Duration

UNIT_SECONDS: dict[str, float] = {
    "ms": 0.001,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
    "d": 86400.0,
    "w": 604800.0,
}

_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w)")
_WHOLE = re.compile(r"(?:\d+(?:\.\d+)?(?:ms|s|m|h|d|w))+")

# Spellings people reach for, mapped to the unit alertd wants; used only for the hint.
_UNIT_WORDS: dict[str, str] = {
    **{w: "ms" for w in ("ms", "msec", "msecs", "millisecond", "milliseconds")},
    **{w: "s" for w in ("s", "sec", "secs", "second", "seconds")},
    **{w: "m" for w in ("m", "min", "mins", "minute", "minutes")},
    **{w: "h" for w in ("h", "hr", "hrs", "hour", "hours")},
    **{w: "d" for w in ("d", "day", "days")},
    **{w: "w" for w in ("w", "wk", "wks", "week", "weeks")},
}
_WORDY = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]+)\s*")
_WORDY_ALL = re.compile(r"(?:\s*\d+(?:\.\d+)?\s*[a-zA-Z]+\s*,?\s*(?:and\s+)?)+")

EXAMPLES = '"30s", "5m", "4h", "1d", "1h30m"'


class DurationError(ValueError):
    """A value that is not a duration; the message is ready to show a person."""


def _hint(text: str) -> str | None:
    """The canonical spelling of a near-miss such as "5 mins" or "1 hour 30 minutes"."""
    if not _WORDY_ALL.fullmatch(text):
        return None
    parts = []
    for number, word in _WORDY.findall(text.replace(",", " ").replace(" and ", " ")):
        unit = _UNIT_WORDS.get(word.lower())
        if unit is None:
            return None
        parts.append(f"{number}{unit}")
    return "".join(parts) or None


def parse_duration(value: object) -> Duration:
    """Seconds in a duration string; ``DurationError`` with a hint otherwise.

    Bare numbers are refused on purpose: "30" could mean seconds or milliseconds, and a config
    read by a person should say which.
    """
    if isinstance(value, bool) or not isinstance(value, str | int | float | Decimal):
        raise DurationError(f"expected a duration string such as {EXAMPLES}")
    if not isinstance(value, str) and not math.isfinite(value):  # TOML nan, inf
        raise DurationError(f"expected a duration string such as {EXAMPLES}")
    if not isinstance(value, str):
        raise DurationError(f'{value} is not a duration (write the unit, e.g. "{value}s")')
    text = value.strip()
    if _WHOLE.fullmatch(text):
        return Duration(sum(float(n) * UNIT_SECONDS[u] for n, u in _PART.findall(text)))
    hint = _hint(text)
    if hint is not None and _WHOLE.fullmatch(hint):
        raise DurationError(f'"{value}" is not a duration (use "{hint}")')
    raise DurationError(f'"{value}" is not a duration (use e.g. {EXAMPLES})')


def format_duration(seconds: float) -> str:
    """The shortest spelling ``parse_duration`` reads back: 5400 -> "1h30m", 0.5 -> "500ms"."""
    if seconds == 0:
        return "0s"
    if seconds < 1:
        return f"{round(seconds * 1000)}ms"
    rest = round(seconds)
    out = []
    for unit in ("d", "h", "m", "s"):
        size = int(UNIT_SECONDS[unit])
        if rest >= size:
            out.append(f"{rest // size}{unit}")
            rest %= size
    return "".join(out)
