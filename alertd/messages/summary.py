"""One message about several alerts of one rule and key: a headline, then a line (and the
indented body) for each, with their times in the configured timezone."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, tzinfo

from alertd.events import Alert


def _clock(moment: datetime, tz: tzinfo) -> str:
    return moment.astimezone(tz).strftime("%H:%M:%S")


def summarize(
    rule: str, key: str, alerts: Sequence[Alert], tz: tzinfo, max_items: int = 50
) -> tuple[str, str]:
    """Title and body for one message about ``alerts``. A single alert is sent as the rules
    engine wrote it; several get a headline and one line (plus indented body) each."""
    if len(alerts) == 1:
        return alerts[0].title, alerts[0].body
    firing = sum(1 for a in alerts if a.status == "firing")
    resolved = len(alerts) - firing
    counts = ", ".join(
        part
        for part in (
            f"{firing} firing" if firing else "",
            f"{resolved} resolved" if resolved else "",
        )
        if part
    )
    title = f"{len(alerts)} alerts: {rule} ({key})"
    first, last = alerts[0].created, alerts[-1].created
    zone = first.astimezone(tz).tzname() or ""
    lines = [
        f"{len(alerts)} alerts for rule {rule!r}, key {key} ({counts}), "
        f"{_clock(first, tz)}-{_clock(last, tz)} {zone}".rstrip(),
        "",
    ]
    for alert in alerts[:max_items]:
        mark = " [resolved]" if alert.status == "resolved" else ""
        lines.append(f"\u2022 {_clock(alert.created, tz)}{mark} {alert.title}")
        if alert.body and alert.body != alert.title:
            lines.extend(f"  {line}" for line in alert.body.splitlines())
    if len(alerts) > max_items:
        lines.append(f"\u2026 and {len(alerts) - max_items} more")
    return title, "\n".join(lines)
