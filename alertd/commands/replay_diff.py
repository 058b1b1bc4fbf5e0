"""``alertd replay --diff OLD NEW CAPTURE``: the notifications one config sends over a capture
and the other does not, to check a change before ``systemctl reload``.

It is two replays (``replay.transcript_of``: the daemon on the capture's clock, each from
empty rule state, with the same ``--state-dir`` silences), compared entry by entry in send
order. An entry is a whole notification: its time, channel, level, title and body, so a
notification whose text or time changed shows as one removed and one added. Lines start
``-`` (only OLD sends it) or ``+`` (only NEW does); a summary line ends the output.

Exit codes, as diff(1): 0 both send the same, 1 they differ, 2 a config or the capture
cannot be used (said on stderr).
"""

from __future__ import annotations

import argparse
import difflib
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TextIO

import attrs

from alertd.check import load_config
from alertd.commands.replay import ReplayError, transcript_of
from alertd.config.errors import ConfigError
from alertd.config.model import Config
from alertd.daemon.reload import failure_reason


@attrs.frozen(kw_only=True)
class ReplayDiff:
    """What OLD and NEW send over one capture: every notification of each, in send order,
    and those only one of them sends."""

    old: Sequence[str]
    new: Sequence[str]
    only_old: Sequence[str]
    only_new: Sequence[str]
    # the differing entries in send order, each with its side: "-" (OLD) or "+" (NEW)
    changes: Sequence[tuple[str, str]]

    @property
    def same(self) -> bool:
        return not self.changes


def compare(old: Sequence[str], new: Sequence[str]) -> ReplayDiff:
    """The entries (``SentNotification.format()`` texts, in send order) only one side has."""
    # autojunk off: a notification repeated hundreds of times is content, not noise
    matcher = difflib.SequenceMatcher(a=old, b=new, autojunk=False)
    changes: list[tuple[str, str]] = []
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag == "equal":
            continue
        changes += [("-", entry) for entry in old[i1:i2]]
        changes += [("+", entry) for entry in new[j1:j2]]
    return ReplayDiff(
        old=old,
        new=new,
        only_old=[e for side, e in changes if side == "-"],
        only_new=[e for side, e in changes if side == "+"],
        changes=changes,
    )


def replay_diff(
    old: Config, new: Config, capture: str | Path, *, state_dir: str | Path | None = None
) -> ReplayDiff:
    """Replay ``capture`` with ``old`` and with ``new`` and compare what each sends;
    ``ReplayError`` as ``replay`` raises it (for either config)."""
    sent = [transcript_of(c, capture, state_dir=state_dir).lines() for c in (old, new)]
    return compare(*sent)


def write(diff: ReplayDiff, old_name: str, new_name: str, out: TextIO) -> None:
    for side, entry in diff.changes:
        for line in entry.splitlines():
            print(f"{side} {line}", file=out)
    if diff.same:
        summary = f"both send the same {_n(len(diff.old))}"
    else:
        summary = (
            f"{len(diff.only_old)} only in {old_name}, {len(diff.only_new)} only in {new_name}"
        )
    print(f"{old_name}: {_n(len(diff.old))}, {new_name}: {_n(len(diff.new))}; {summary}", file=out)


def _n(count: int) -> str:
    return f"{count} notification" if count == 1 else f"{count} notifications"


def _load(path: str) -> Config | None:
    try:
        return load_config(path)
    except ConfigError as exc:
        print(exc.format(), file=sys.stderr)
    except Exception as exc:  # a file the parser cannot take
        print(f"alertd replay --diff: {failure_reason(exc, path)}", file=sys.stderr)
    return None


def main(args: argparse.Namespace) -> int:
    """``alertd replay --diff OLD NEW CAPTURE [--state-dir DIR]``."""
    old_path, new_path = args.diff
    old, new = _load(old_path), _load(new_path)
    if old is None or new is None:
        return 2
    try:
        diff = replay_diff(old, new, args.capture, state_dir=getattr(args, "state_dir", None))
    except ReplayError as exc:
        print(f"alertd replay --diff: {exc}", file=sys.stderr)
        return 2
    write(diff, old_path, new_path, sys.stdout)
    return 0 if diff.same else 1
