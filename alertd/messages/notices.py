"""What alertd says about its own delivery: the report to the fallback channel when
notifications were given up on, and the mark on a notification that may be a second copy."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import attrs

from alertd.store.notifications import OutboxRow


def undelivered_notice(channel: str, rows: Sequence[OutboxRow], reason: str) -> tuple[str, str]:
    """Title and body telling the fallback channel which notifications for ``channel`` were
    given up on, why, and each one's last error."""
    title = f"alertd could not deliver {len(rows)} notification(s) to {channel}"
    lines = [f"Gave up: {reason}."]
    for row in rows:
        lines.append(f"\u2022 {row.title}")
        if row.last_error:
            lines.append(f"  last error: {row.last_error}")
    return title, "\n".join(lines)


# The start of the title of a notification sent again because alertd stopped (was killed,
# crashed, or was stopped) while handing it to the service: the first copy may have arrived.
# Every copy after the first carries it. Rarely a first copy does too: when alertd died in
# the moment between writing a send down and the request leaving (a millisecond or so).
POSSIBLE_REPEAT = "[possible repeat] "


def marked_if_repeat(
    rows: Sequence[OutboxRow], possible_repeat: Callable[[OutboxRow], bool]
) -> list[OutboxRow]:
    """``rows``, those that may have reached the service before titled as a possible
    repeat (in a digest too: each row's line carries its title)."""
    return [
        attrs.evolve(r, title=POSSIBLE_REPEAT + r.title) if possible_repeat(r) else r for r in rows
    ]
