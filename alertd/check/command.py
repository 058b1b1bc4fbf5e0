"""``alertd check -c FILE``: every problem in the file, or a short summary when it is fine."""

from __future__ import annotations

import argparse
import sys

from alertd.check.stages import read_config
from alertd.config.errors import Problem


def main(args: argparse.Namespace) -> int:
    """Exit 0 when the file is valid; print every problem to stderr and exit 1 otherwise."""
    file: str = args.config
    config, problems = read_config(file)
    if config is None or problems:
        for problem in problems:
            print(problem, file=sys.stderr)
        print(f"{file}: {_count(problems)}", file=sys.stderr)
        return 1
    enabled = sum(r.enabled for r in config.rules)
    print(
        f"{file}: OK ({_n(len(config.accounts), 'account')}, "
        f"{_n(len(config.channels), 'channel')}, {_n(len(config.rules), 'rule')}"
        + (f", {enabled} enabled" if enabled != len(config.rules) else "")
        + ")"
    )
    return 0


def _n(count: int, word: str) -> str:
    return f"{count} {word}" if count == 1 else f"{count} {word}s"


def _count(problems: list[Problem]) -> str:
    return _n(len(problems), "problem")
