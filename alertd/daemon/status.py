"""The one line ``systemctl status alertd`` shows (sd_notify ``STATUS=``), built from plain
numbers so that it is testable without a daemon:
``3/3 accounts connected, 0 alerts pending, last alert 2m ago``."""

from __future__ import annotations

from collections.abc import Sequence

# systemctl shows the status on one line; a problem text longer than this is cut, the full
# message is in the journal.
MAX_PROBLEM_LENGTH = 160
MAX_DOWN_NAMES = 3  # name at most this many down accounts, then "+N more"


def format_age(seconds: float) -> str:
    """A short age a person reads at a glance: ``just now``, ``45s ago``, ``2m ago``, ``3h
    ago``, ``2d ago``."""
    seconds = max(0.0, seconds)
    if seconds < 1:
        return "just now"
    if seconds < 60:
        return f"{int(seconds)}s ago"
    if seconds < 3600:
        return f"{int(seconds // 60)}m ago"
    if seconds < 86400:
        return f"{int(seconds // 3600)}h ago"
    return f"{int(seconds // 86400)}d ago"


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def format_status(
    *,
    connected: int,
    accounts: int,
    pending: int,
    last_alert_age: float | None,
    down: Sequence[str] = (),
    problem: str | None = None,
) -> str:
    """The status line. ``last_alert_age`` is seconds since the last alert fired (None: none
    yet); ``down`` names disconnected accounts; ``problem`` (e.g. a failed reload) comes first
    so a truncated display still shows it."""
    noun = "account" if accounts == 1 else "accounts"
    parts = [f"{connected}/{accounts} {noun} connected"]
    if down:
        names = ", ".join(down[:MAX_DOWN_NAMES])
        if len(down) > MAX_DOWN_NAMES:
            names += f" +{len(down) - MAX_DOWN_NAMES} more"
        parts[0] += f" (down: {names})"
    parts.append(f"{_plural(pending, 'alert')} pending")
    parts.append(
        "no alerts yet" if last_alert_age is None else f"last alert {format_age(last_alert_age)}"
    )
    line = ", ".join(parts)
    if problem:
        text = " ".join(problem.split())
        if len(text) > MAX_PROBLEM_LENGTH:
            text = text[: MAX_PROBLEM_LENGTH - 1] + "…"
        line = f"{text}; {line}"
    return line
