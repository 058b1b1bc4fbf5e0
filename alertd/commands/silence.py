"""``alertd silence add|list|remove``: manage silences in the state database.

The running daemon notices changes within about a second (silences.py). The config file is
read as plain TOML, not loaded, on purpose: muting a noisy rule at 3 a.m. must not fail
because a channel's token is not in this shell's environment. From it come ``[daemon]
state_dir`` (``$STATE_DIRECTORY``, set by systemd, overrides it, as for the daemon) and the
rule names: ``add`` refuses a ``--rule`` glob that matches no rule, a ``--match`` key that
no alert carries and a ``--match`` value that no configured account, rule, symbol or currency
has (``account=cryptology`` for the account ``cryptology-desk``): a typo would mute nothing
while the user thinks it is quiet. ``--force`` adds it anyway.

Every mistake is refused before the database is touched, so a refused ``add`` adds nothing
and creates no state directory; ``list`` and ``remove`` create nothing either.

With ``[daemon] database`` (replicas on PostgreSQL) the silences are the replicas' shared
table: a silence added with any replica's config mutes what every replica sends. Its
password reference is the one secret resolved (it must be set in this shell).
"""

from __future__ import annotations

import argparse
import difflib
import getpass
import sqlite3
import sys
import time
from datetime import UTC, datetime, tzinfo
from pathlib import Path
from typing import Any

from alertd.config.errors import Problem
from alertd.config.model import DaemonSettings, Secret
from alertd.config.reading import read_toml
from alertd.config.state_dir import state_directory
from alertd.dispatch.labels import KNOWN_LABELS, glob_match
from alertd.events import normalize_symbol
from alertd.messages.formats import zone
from alertd.store import database as store
from alertd.store.silences import Silence, add_silence, list_silences, remove_silence
from alertd.store.sql import Connection

# The longest silence `add` takes. Longer is a rule switched off, which the config says
# better (enabled = false); and a silence must end at a time a calendar can show.
MAX_SILENCE = 3650 * 86400.0  # ten years


class SilenceError(ValueError):
    """A mistake in the command or its config; the message is ready to show."""


def raw_config(config_path: str) -> dict[str, Any]:
    """The config file as plain TOML (never loaded: no secret needs to be set)."""
    raw = read_toml(config_path)
    if isinstance(raw, Problem):
        raise SilenceError(f"cannot read the config: {raw}")
    return raw


def state_dir_of(raw: dict[str, Any], config_path: str) -> Path:
    """The state directory for the config ``raw`` (``$STATE_DIRECTORY`` wins, as for the
    daemon: ``config.state_dir``)."""
    daemon = raw.get("daemon", {})
    if not isinstance(daemon, dict):
        raise SilenceError(f"{config_path}: [daemon] must be a table")
    value = daemon.get("state_dir", DaemonSettings().state_dir)
    if not isinstance(value, str) or not value.strip() or "\0" in value:
        raise SilenceError(f"{config_path}: [daemon] state_dir must be a directory name")
    return state_directory(None, value)


def rule_names(raw: dict[str, Any]) -> list[str]:
    """The ``name`` of every ``[[rules]]`` table in the config ``raw``."""
    rules = raw.get("rules", [])
    if not isinstance(rules, list):
        return []
    return [r["name"] for r in rules if isinstance(r, dict) and isinstance(r.get("name"), str)]


def _names(items: object, key: str) -> list[str]:
    """Every string (or string in a list) under ``key`` of the tables in ``items``."""
    found: list[str] = []
    for item in items if isinstance(items, list) else []:
        value = item.get(key) if isinstance(item, dict) else None
        for v in value if isinstance(value, list) else [value]:
            if isinstance(v, str) and v not in found:
                found.append(v)
    return found


def label_values(raw: dict[str, Any]) -> dict[str, list[str]]:
    """The values the config ``raw`` gives labels alerts carry: account and rule names, the
    symbols rules filter on and market streams name (``dealinfo.btc_usdt``), the currencies
    rules filter on; symbols and currencies in the one form alerts carry (``BTC_USDT``)."""
    accounts = raw.get("accounts")
    symbols = [normalize_symbol(s) for s in _names(raw.get("rules"), "symbol")]
    for stream in _names(accounts, "streams"):
        if "." in stream:
            symbols.append(normalize_symbol(stream.split(".", 1)[1]))
    return {
        "account": _names(accounts, "name"),
        "rule": rule_names(raw),
        "symbol": sorted(set(symbols)),
        "currency": sorted({c.strip().upper() for c in _names(raw.get("rules"), "currency")}),
    }


def _did_you_mean(word: str, choices: list[str]) -> str:
    close = difflib.get_close_matches(word, choices, n=3, cutoff=0.6)
    if close:
        return "did you mean " + " or ".join(repr(c) for c in close) + "?"
    return "did you mean one of: " + (", ".join(sorted(choices)) or "(none)") + "?"


def target_problems(
    rule: str, matchers: dict[str, str], names: list[str], values: dict[str, list[str]]
) -> list[str]:
    """Why a silence for ``rule`` (a glob) and ``matchers`` would mute nothing, given the
    config's rule ``names`` and ``label_values``: empty when it can match. A label the
    config names no value of (symbols, when no rule or stream names one) is not judged."""
    problems: list[str] = []
    if not any(glob_match(rule, name) for name in names):
        problems.append(
            f"--rule {rule!r} matches no rule in the config; {_did_you_mean(rule, names)}"
        )
    for key, value in matchers.items():
        if key not in KNOWN_LABELS:
            problems.append(
                f"--match {key}=...: no alert has a label {key!r}; "
                f"{_did_you_mean(key, sorted(KNOWN_LABELS))}"
            )
            continue
        known = values.get(key, [])
        if known and not any(glob_match(value, v) for v in known):
            # written another way (btc-usdt, usdt): the one form alerts carry is the hint
            same = [v for v in known if normalize_symbol(v) == normalize_symbol(value)]
            hint = f"did you mean {same[0]!r}?" if same else _did_you_mean(value, known)
            problems.append(
                f"--match {key}={value}: no {key} in the config is {value!r} (values are "
                f"matched whole, case and all; globs allowed); {hint}"
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


def timezone_of(raw: dict[str, Any]) -> tzinfo:
    """``[daemon] timezone`` of the config ``raw`` (UTC when unset or unknown): the zone every
    time a person reads is shown in."""
    daemon = raw.get("daemon")
    name = daemon.get("timezone") if isinstance(daemon, dict) else None
    return zone(name if isinstance(name, str) else DaemonSettings().timezone)


def _when(seconds: float, tz: tzinfo) -> str:
    try:
        return datetime.fromtimestamp(seconds, tz).strftime("%Y-%m-%d %H:%M %Z")
    except (ValueError, OverflowError, OSError):  # a row older alertds wrote past year 9999
        return "a time past the calendar's end"


def format_silence(s: Silence, now: float, tz: tzinfo = UTC) -> str:
    matchers = " ".join(f"{k}={v}" for k, v in sorted(s.matchers.items()))
    state = "active" if s.active(now) else ("expired" if s.ends <= now else "pending")
    text = f"{s.id}  rule={s.rule}"
    if matchers:
        text += f" {matchers}"
    text += f"  until {_when(s.ends, tz)} ({state})"
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


def _duration(text: str) -> float:
    from alertd.config.durations import DurationError, parse_duration  # lazy: --help is fast

    try:
        seconds = float(parse_duration(text))
    except DurationError as exc:
        raise SilenceError(f"--for: {exc}") from None
    if not seconds > 0:
        raise SilenceError("--for must be longer than zero")
    if seconds > MAX_SILENCE:
        raise SilenceError(
            f"--for {text!r} is longer than a silence may last (at most 3650d, ten years); "
            "to mute a rule for good, set enabled = false on it"
        )
    return seconds


def _add(args: argparse.Namespace, raw: dict[str, Any], path: Path | Secret) -> int:
    """Check everything first, then write: a refused silence leaves no trace."""
    if not args.rule.strip():
        raise SilenceError("--rule is empty: name a rule, or a glob such as 'price-*'")
    try:
        matchers = parse_matchers(args.match)
    except ValueError as exc:
        raise SilenceError(str(exc)) from None
    duration = _duration(args.duration)
    if not args.force:
        problems = target_problems(args.rule, matchers, rule_names(raw), label_values(raw))
        for problem in problems:
            print(f"alertd silence add: {problem}", file=sys.stderr)
        if problems:
            print("alertd silence add: nothing added (--force adds it anyway)", file=sys.stderr)
            return 2
    conn = _open(path, create=True)
    try:
        now = time.time()
        silence = add_silence(
            conn,
            rule=args.rule,
            matchers=matchers,
            starts=now,
            ends=now + duration,
            comment=args.comment,
            created_by=_user(),
        )
    finally:
        conn.close()
    print(f"added silence {silence.id}: {format_silence(silence, now, timezone_of(raw))}")
    return 0


def _list(args: argparse.Namespace, path: Path | Secret, tz: tzinfo) -> int:
    silences: list[Silence] = []
    if isinstance(path, Secret) or path.exists():
        conn = _open(path, create=False)
        try:
            silences = list_silences(conn, now=time.time(), include_expired=args.all)
        except (ValueError, TypeError, KeyError) as exc:  # a row alertd did not write
            raise SilenceError(
                f"cannot read the silences in {path}: a row is not what alertd writes "
                f"({type(exc).__name__})"
            ) from None
        finally:
            conn.close()
    now = time.time()
    if not silences:
        print("no silences" if args.all else "no active silences")
    for silence in silences:
        print(format_silence(silence, now, tz))
    return 0


def _remove(args: argparse.Namespace, path: Path | Secret) -> int:
    removed = False
    if isinstance(path, Secret) or path.exists():
        conn = _open(path, create=False)
        try:
            removed = remove_silence(conn, args.id)
        finally:
            conn.close()
    if removed:
        print(f"removed silence {args.id}")
        return 0
    print(
        f"alertd silence remove: no silence {args.id!r} (see `alertd silence list --all`)",
        file=sys.stderr,
    )
    return 1


def shared_database(raw: dict[str, Any], config_path: str) -> Secret | None:
    """``[daemon] database`` of the config ``raw``, resolved, or None (SQLite)."""
    from alertd.config.database import resolve_database
    from alertd.config.secrets import SecretEnvironment

    daemon = raw.get("daemon")
    if not isinstance(daemon, dict) or "database" not in daemon:
        return None
    found: list[tuple[Any, str]] = []
    only = {"daemon": {"database": daemon["database"]}}
    resolve_database(only, SecretEnvironment.from_process(), found)
    database = only["daemon"]["database"]
    if found or not isinstance(database, Secret):
        why = found[0][1] if found else "must be a postgresql:// URL"
        raise SilenceError(f"{config_path}: [daemon] database: {why}")
    return database


def _open(path: Path | Secret, *, create: bool) -> Connection:
    if isinstance(path, Secret):
        from alertd.store import postgres, schema  # psycopg only for those who use it

        try:
            return postgres.connect(path.reveal(), replica="alertd-silence")
        except (postgres.DatabaseUnavailable, schema.SchemaError) as exc:
            raise SilenceError(str(exc)) from None
    if not create and not path.is_file():
        raise SilenceError(f"the state database {path} is not a file")
    try:
        return store.connect(path)
    except (sqlite3.Error, OSError, ValueError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise SilenceError(f"cannot open the state database {path}: {reason}") from None


def main(args: argparse.Namespace) -> int:
    action = f"alertd silence {args.silence_command}"
    try:
        raw = raw_config(args.config)
        path = shared_database(raw, args.config) or store.db_path(state_dir_of(raw, args.config))
        if args.silence_command == "add":
            return _add(args, raw, path)
        if args.silence_command == "list":
            return _list(args, path, timezone_of(raw))
        if args.silence_command == "remove":
            return _remove(args, path)
        raise SilenceError(f"unknown action {args.silence_command!r}")
    except SilenceError as exc:
        print(f"{action}: {exc}", file=sys.stderr)
        return 2
    except sqlite3.Error as exc:  # locked past the busy timeout, disk full, not a database
        print(f"{action}: the state database: {exc}", file=sys.stderr)
        return 1
