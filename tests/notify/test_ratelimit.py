"""Rate limits as people write them, and the sliding window they enforce."""

from __future__ import annotations

import pytest

from alertd.config.values import parse_rate
from alertd.notify.ratelimit import RateLimiter


@pytest.mark.parametrize(
    ("text", "expected"),
    [("20/1m", (20, 60.0)), ("5/30s", (5, 30.0)), ("100/h", (100, 3600.0)), ("1/1d", (1, 86400.0))],
)
def test_parse_rate(text: str, expected: tuple[int, float]) -> None:
    """COUNT/PERIOD strings become (count, seconds)."""
    assert parse_rate(text) == expected


def test_bad_rate_says_how_to_write_it() -> None:
    """A rate that is not COUNT/PERIOD names the value and shows an example."""
    with pytest.raises(ValueError, match=r"'20 per minute'.*20/1m"):
        parse_rate("20 per minute")


def test_window_slides() -> None:
    """After COUNT sends, the next is allowed when the oldest leaves the window."""
    limiter = RateLimiter.parse("2/1m")
    limiter.record(0.0)
    limiter.record(10.0)
    assert limiter.available(30.0) == 0
    assert limiter.next_free(30.0) == 60.0
    assert limiter.available(60.0) == 1
