"""``alertd check [-c] FILE [--no-secrets]``: every problem in the file, or a short summary when
it is fine.

``--no-secrets`` checks everything but whether the secret references resolve, for a config
kept in git and checked where the service's environment and credentials are not (CI, a
laptop): every ``{env:NAME}`` and ``{cred:NAME}`` stands for a placeholder word. A channel URL
holding a reference is then checked for its scheme only, since one reference may stand for
several parts of it (``slack://{env:SLACK_TOKENS}/#desk``) that no placeholder can imitate.
"""

from __future__ import annotations

import argparse
import re
import sys
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path

import attrs

from alertd.check.channel_urls import PLACEHOLDER, apprise_problem
from alertd.check.database import database_status
from alertd.check.stages import STAGE_CHECKS, read_config
from alertd.config import load
from alertd.config.errors import Problem
from alertd.config.model import Config
from alertd.config.reading import read_text
from alertd.config.secrets import REFERENCE, SecretEnvironment

_CRED_FILE = re.compile(r"[A-Za-z0-9_.@-]+")  # a credential name that can be a file name
_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.-]{0,31})://")

NOT_RESOLVED = "secret references not resolved (--no-secrets)"


def main(args: argparse.Namespace) -> int:
    """Exit 0 when the file is valid; print every problem to stderr and exit 1 otherwise."""
    file: str = args.config
    no_secrets: bool = getattr(args, "no_secrets", False)
    config, problems = check_without_secrets(file) if no_secrets else read_config(file)
    if config is None or problems:
        for problem in problems:
            print(problem, file=sys.stderr)
        print(f"{file}: {_count(problems)}", file=sys.stderr)
        return 1
    database = None if no_secrets else database_status(config)
    if database is not None and not database[0]:
        print(f"{file}: {database[1]}", file=sys.stderr)
        return 1
    enabled = sum(r.enabled for r in config.rules)
    print(
        f"{file}: OK ({_n(len(config.accounts), 'account')}, "
        f"{_n(len(config.channels), 'channel')}, {_n(len(config.rules), 'rule')}"
        + (f", {enabled} enabled" if enabled != len(config.rules) else "")
        + ")"
        + (f"; {NOT_RESOLVED}" if no_secrets else "")
    )
    if database is not None:
        print(f"{file}: {database[1]}")
    return 0


class _Placeholders(Mapping[str, str]):
    """An environment in which every variable is set, to the placeholder."""

    def __getitem__(self, name: str) -> str:
        return PLACEHOLDER

    def __iter__(self) -> Iterator[str]:
        return iter(())

    def __len__(self) -> int:
        return 0


def _url_problem(url: str) -> str | None:
    """apprise's problem with ``url``; for one holding a placeholder, only an unknown scheme
    (the rest of its shape depends on what the references hold)."""
    problem = apprise_problem(url)
    if problem is None or PLACEHOLDER not in url:
        return problem
    m = _SCHEME.match(url)
    if m is not None and f"scheme '{m.group(1)}' is known" in problem:
        return None
    return problem


NO_SECRET_CHECKS = attrs.evolve(STAGE_CHECKS, url_problem=_url_problem)


def check_without_secrets(file: str) -> tuple[Config | None, list[Problem]]:
    """``read_config`` of ``file`` with every secret reference standing for a placeholder."""
    text = read_text(file)
    if isinstance(text, Problem):
        return None, [text]
    with tempfile.TemporaryDirectory(prefix="alertd-check-") as credentials:
        for kind, name in REFERENCE.findall(text):
            # a name that cannot be a file is reported as the real lookup reports it
            if kind == "cred" and _CRED_FILE.fullmatch(name) and name not in (".", ".."):
                (Path(credentials) / name).write_text(PLACEHOLDER, encoding="utf-8")
        where = SecretEnvironment(environ=_Placeholders(), credentials_dir=credentials)
        return load.parse_config(text, file=file, secrets=where, checks=NO_SECRET_CHECKS)


def _n(count: int, word: str) -> str:
    return f"{count} {word}" if count == 1 else f"{count} {word}s"


def _count(problems: list[Problem]) -> str:
    return _n(len(problems), "problem")
