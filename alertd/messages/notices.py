"""What alertd says about its own delivery: the report to the fallback channel when
notifications were given up on."""

from __future__ import annotations

from collections.abc import Sequence

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
