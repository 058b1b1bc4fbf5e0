"""``alertd silence add|list|remove``: manage silences in the state database.

The running daemon notices changes within about a second (silences.py). The config file is
read as plain TOML, not loaded, on purpose: muting a noisy rule at 3 a.m. must not fail
because a channel's token is not in this shell's environment. From it come ``[daemon]
state_dir`` (``$STATE_DIRECTORY``, set by systemd, overrides it, as for the daemon) and the
rule names: ``add`` refuses a ``--rule`` glob that matches no rule and a ``--match`` key that
no alert carries (a typo would mute nothing while the user thinks it is quiet), unless
``--force``.
"""

from __future__ import annotations

import argparse
import difflib
import getpass
import os
import sys
import time
import tomllib
from datetime import UTC, datetime
from pathlib import Path

from alertd.config.model import DaemonSettings
from alertd.dispatch.labels import KNOWN_LABELS, glob_match
from alertd.store import database as store
from alertd.store.silences import Silence, add_silence, list_silences, remove_silence


def state_dir_of(config_path: str) -> Path:
    """The state directory for the config at ``config_path`` (``$STATE_DIRECTORY`` wins)."""
    env = os.environ.get("STATE_DIRECTORY")
    if env:
        return Path(env.split(":")[0])
    with open(config_path, "rb") as f:
        raw = tomllib.load(f)
    daemon = raw.get("daemon", {})
    value = (
        daemon.get("state_dir", DaemonSettings().state_dir) if isinstance(daemon, dict) else None
    )
    if not isinstance(value, str):
        raise ValueError(f"{config_path}: [daemon] state_dir must be a string (a directory)")
    return Path(value)


def rule_names(config_path: str) -> list[str]:
    """The ``name`` of every ``[[rules]]`` table in the config at ``config_path``."""
    with open(config_path, "rb") as f:
        raw = tomllib.load(f)
    rules = raw.get("rules", [])
    if not isinstance(rules, list):
        return []
    return [r["name"] for r in rules if isinstance(r, dict) and isinstance(r.get("name"), str)]


def _did_you_mean(word: str, choices: list[str]) -> str:
    close = difflib.get_close_matches(word, choices, n=3, cutoff=0.6)
    if close:
        return "did you mean " + " or ".join(repr(c) for c in close) + "?"
    return "did you mean one of: " + (", ".join(sorted(choices)) or "(none)") + "?"


def target_problems(rule: str, matchers: dict[str, str], names: list[str]) -> list[str]:
    """Why a silence for ``rule`` (a glob) and ``matchers`` would mute nothing, given the
    config's rule ``names``: empty when it can match."""
    problems: list[str] = []
    if not any(glob_match(rule, name) for name in names):
        problems.append(
            f"--rule {rule!r} matches no rule in the config; {_did_you_mean(rule, names)}"
        )
    for key in matchers:
        if key not in KNOWN_LABELS:
            problems.append(
                f"--match {key}=...: no alert has a label {key!r}; "
                f"{_did_you_mean(key, sorted(KNOWN_LABELS))}"
            )
    return problems


def parse_matchers(items: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"--match {item!r} is not KEY=VALUE (e.g. --match account=main)")
        out[key.strip()] = value.strip()
    return out


def _when(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).astimezone().strftime("%Y-%m-%d %H:%M %Z")


def format_silence(s: Silence, now: float) -> str:
    matchers = " ".join(f"{k}={v}" for k, v in sorted(s.matchers.items()))
    state = "active" if s.active(now) else ("expired" if s.ends <= now else "pending")
    text = f"{s.id}  rule={s.rule}"
    if matchers:
        text += f" {matchers}"
    text += f"  until {_when(s.ends)} ({state})"
    if s.created_by:
        text += f"  by {s.created_by}"
    if s.comment:
        text += f"  # {s.comment}"
    return text


def _user() -> str:
    try:
        return getpass.getuser()
    except (OSError, KeyError):  # no login name in a bare container
        return ""


def main(args: argparse.Namespace) -> int:
    from alertd.config.durations import parse_duration  # lazy: keeps `alertd --help` fast

    try:
        path = store.db_path(state_dir_of(args.config))
    except (OSError, ValueError, tomllib.TOMLDecodeError) as exc:
        print(f"alertd silence: cannot read {args.config}: {exc}", file=sys.stderr)
        return 2
    now = time.time()
    try:
        conn = store.connect(path)
    except Exception as exc:  # sqlite3.Error, OSError: say where, not a traceback
        print(f"alertd silence: cannot open the state database {path}: {exc}", file=sys.stderr)
        return 2
    try:
        if args.silence_command == "add":
            try:
                duration = float(parse_duration(args.duration))
                matchers = parse_matchers(args.match)
            except ValueError as exc:
                print(f"alertd silence add: {exc}", file=sys.stderr)
                return 2
            if duration <= 0:
                print("alertd silence add: --for must be longer than zero", file=sys.stderr)
                return 2
            if not args.force:
                try:
                    names = rule_names(args.config)
                except (OSError, tomllib.TOMLDecodeError) as exc:
                    print(f"alertd silence add: cannot read {args.config}: {exc}", file=sys.stderr)
                    return 2
                problems = target_problems(args.rule, matchers, names)
                for problem in problems:
                    print(f"alertd silence add: {problem}", file=sys.stderr)
                if problems:
                    print(
                        "alertd silence add: nothing added (--force adds it anyway)",
                        file=sys.stderr,
                    )
                    return 2
            silence = add_silence(
                conn,
                rule=args.rule,
                matchers=matchers,
                starts=now,
                ends=now + duration,
                comment=args.comment,
                created_by=_user(),
            )
            print(f"added silence {silence.id}: {format_silence(silence, now)}")
            return 0
        if args.silence_command == "list":
            silences = list_silences(conn, now=now, include_expired=args.all)
            if not silences:
                print("no silences" if args.all else "no active silences")
            for silence in silences:
                print(format_silence(silence, now))
            return 0
        if args.silence_command == "remove":
            if remove_silence(conn, args.id):
                print(f"removed silence {args.id}")
                return 0
            print(
                f"alertd silence remove: no silence {args.id!r} (see `alertd silence list --all`)",
                file=sys.stderr,
            )
            return 1
        print(f"alertd silence: unknown action {args.silence_command!r}", file=sys.stderr)
        return 2
    finally:
        conn.close()
