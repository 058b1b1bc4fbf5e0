"""One message for a backlog a channel cannot take one message at a time (faster than its
rate limit allows, or than the service answers: ``[dispatch] catch_up``): every notification
by its title, the first ones with their bodies."""

from __future__ import annotations

import textwrap
from collections.abc import Sequence

from alertd.store.notifications import OutboxRow


def digest_text(
    channel: str,
    rows: Sequence[OutboxRow],
    max_items: int,
    *,
    of: int | None = None,
    number: tuple[int, int] = (1, 1),
) -> tuple[str, str]:
    """Title and body of one digest message: every row by title, the first ``max_items``
    with bodies. ``of``: how many rows were due in all; ``number``: (this message, messages)
    of the pass."""
    count = str(len(rows)) if of is None or of == len(rows) else f"{len(rows)} of {of}"
    title = f"alertd digest: {count} notifications for {channel}"
    if number[1] > 1:
        title += f" ({number[0]}/{number[1]})"
    lines = [f"{count} notifications came faster than {channel} takes them one at a time:"]
    for i, row in enumerate(rows):
        lines.append(f"\u2022 {row.title}")
        if i < max_items and row.body and row.body != row.title:
            lines.append(textwrap.indent(row.body, "  "))
    return title, "\n".join(lines)
