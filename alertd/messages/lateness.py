"""Saying a message is late: a notification sent longer than ``[dispatch] late_after`` after
its alert was made (a service that was down, a long backlog, quiet hours) starts with one line
saying how late it is and when the alert is from, in ``[daemon] timezone`` with the zone named,
so mail that arrives after an outage, out of order, says so. The delivery log line carries the
same lateness (``late=12m``)."""

from __future__ import annotations

from datetime import UTC, datetime

from alertd.messages.formats import duration, zone


def lateness(created: float, now: float, late_after: float) -> float | None:
    """Seconds a message sent at ``now`` (Unix seconds) for an alert made at ``created`` is
    late, or None when it is in time (or ``late_after`` is 0: never said)."""
    late = now - created
    if late_after <= 0 or late <= late_after:
        return None
    return late


def late_marker(created: float, now: float, late_after: float, timezone: str) -> str | None:
    """The first line of a late message, e.g. ``(delivered 12m late: the alert is from
    17:52:11 CET)``, with the date when the alert is from another day; None when in time."""
    late = lateness(created, now, late_after)
    if late is None:
        return None
    tz = zone(timezone)
    made = datetime.fromtimestamp(created, UTC).astimezone(tz)
    sent = datetime.fromtimestamp(now, UTC).astimezone(tz)
    fmt = "%H:%M:%S %Z" if made.date() == sent.date() else "%Y-%m-%d %H:%M:%S %Z"
    return f"(delivered {duration(late)} late: the alert is from {made.strftime(fmt)})"


def with_marker(body: str, created: float, now: float, late_after: float, timezone: str) -> str:
    """``body`` with the late marker as its first line when it is late, else unchanged."""
    marker = late_marker(created, now, late_after, timezone)
    return body if marker is None else f"{marker}\n{body}"


def late_words(created: float, now: float, late_after: float) -> str:
    """`` late=12m`` for a delivery log line when the message was late, else nothing."""
    late = lateness(created, now, late_after)
    return "" if late is None else f" late={duration(late).replace(' ', '')}"
