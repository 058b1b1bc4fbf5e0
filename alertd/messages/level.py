"""What a message is shown as, its *level*: the highest severity of the firing alerts it
carries, or ``resolved`` when every one of them is a resolution (a recovery is good news
whatever the rule's severity: services show it as a success, at ``info``'s urgency).

The outbox keeps a row's level in its ``severity`` column, so a resolved notice is told
apart from a firing one all the way to the service."""

from __future__ import annotations

from collections.abc import Iterable

from alertd.events import Alert, highest_severity

RESOLVED = "resolved"


def combined_level(levels: Iterable[str]) -> str:
    """The level of one message carrying messages of ``levels`` (a digest): ``resolved``
    only when all of them are, else the highest severity among the others."""
    levels = list(levels)
    firing = [level for level in levels if level != RESOLVED]
    return RESOLVED if levels and not firing else highest_severity(firing)


def alerts_level(alerts: Iterable[Alert]) -> str:
    """The level of one message about ``alerts``."""
    return combined_level(RESOLVED if a.status == "resolved" else a.severity for a in alerts)
