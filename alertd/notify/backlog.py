"""When a channel falls behind: what its service takes to accept a message, measured per URL,
and whether the rows due now would wait too long if they went out one message each.

A URL is *behind* when sending its due rows one after another would take longer than
``[dispatch] catch_up`` (default 1 s): ``rows x the URL's recent send time``. Then what waits
goes out as digests (``digests``), each carrying whole rows in one message of the service,
and single messages resume as soon as the queue is short again. The send time is an
exponentially weighted moving average of the notifier call's duration, for calls the
service accepted (a refusal or a timeout says nothing about how fast it takes messages).

Deciding costs a dict lookup and a multiplication: a channel that keeps up pays nothing
else (no read, no wait).
"""

from __future__ import annotations

from enum import Enum

import attrs

from alertd.config.model import Secret

WEIGHT = 0.3  # of the newest measurement in the average: a few sends make a trend


class Plan(Enum):
    IN_ORDER = "in order"  # one message a row, oldest first (the channel keeps up)
    FIRST_ALONE = "first alone"  # the URL is not measured yet: one row, then decide
    DIGESTS = "digests"  # the URL is behind: coalesce what waits


@attrs.define
class SendTimes:
    """Each URL's recent time to have a message accepted, in seconds (trio clock)."""

    _seconds: dict[Secret, float] = attrs.field(factory=dict)

    def record(self, url: Secret, seconds: float) -> None:
        known = self._seconds.get(url)
        self._seconds[url] = seconds if known is None else known + WEIGHT * (seconds - known)

    def estimate(self, url: Secret) -> float | None:
        """None until the URL accepted a message."""
        return self._seconds.get(url)


def behind(due: int, per_send: float | None, catch_up: float) -> bool:
    """Whether ``due`` rows, one message each at ``per_send`` seconds, take longer than
    ``catch_up`` (never for one row, nor for a URL not measured yet)."""
    return due > 1 and per_send is not None and due * per_send > catch_up


def plan(due: int, per_send: float | None, catch_up: float) -> Plan:
    """How a pass over ``due`` rows of a URL without a rate limit sends them."""
    if due <= 1:
        return Plan.IN_ORDER
    if per_send is None:
        return Plan.FIRST_ALONE
    return Plan.DIGESTS if behind(due, per_send, catch_up) else Plan.IN_ORDER
