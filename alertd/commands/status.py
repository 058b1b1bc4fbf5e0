"""``alertd status [-c CONFIG] [--json] [--socket PATH]``: ask the daemon running on this
machine how it is, through its control socket (``daemon/control``): its accounts (connected
since when, last frame, reconnects), the outbox by channel with the oldest pending, active
silences, the last notifications sent and the heartbeat's last verdict.

The socket is found as the daemon places it: ``$RUNTIME_DIRECTORY`` when set, else the state
directory (``--state-dir``, ``$STATE_DIRECTORY``, else ``[daemon] state_dir``). The config is
read as plain TOML, as ``silence`` reads it: asking how alertd is needs no secret.

Exit codes: 0 answered, 1 no daemon answers, 2 the config cannot be read.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from alertd.commands.silence import SilenceError, raw_config, state_dir_of
from alertd.daemon.control import SOCKET_NAME, request_status, socket_path
from alertd.daemon.status import format_age
from alertd.messages.formats import duration, zone


def candidates(args: argparse.Namespace, environ: Mapping[str, str]) -> list[Path]:
    """Where the daemon may listen, in the order asked."""
    if args.socket:
        return [Path(args.socket)]
    if args.state_dir:
        state = Path(args.state_dir)
    else:
        try:
            state = state_dir_of(raw_config(args.config), args.config)
        except SilenceError as exc:
            raise StatusError(str(exc)) from None
    found = [socket_path(state, environ)]
    if found[0] != state / SOCKET_NAME:
        found.append(state / SOCKET_NAME)
    return found


class StatusError(ValueError):
    """The config cannot be read; the message is ready to show."""


def ask(paths: Sequence[Path]) -> dict[str, Any]:
    """The first answer of a daemon on ``paths``; ``OSError`` naming them when none answers."""
    last: OSError | None = None
    for path in paths:
        try:
            return request_status(path)
        except OSError as exc:
            last = exc
    where = " or ".join(str(p) for p in paths)
    if isinstance(last, PermissionError):
        raise OSError(f"not allowed to ask on {where}: run it as the daemon's user, or root")
    reason = (last.strerror if last and last.strerror else None) or "no answer"
    raise OSError(f"no alertd answers on {where} ({reason}): is it running?")


def main(args: argparse.Namespace) -> int:
    try:
        paths = candidates(args, os.environ)
    except StatusError as exc:
        print(f"alertd status: {exc}", file=sys.stderr)
        return 2
    try:
        answer = ask(paths)
    except (OSError, ValueError) as exc:
        text = str(exc) if isinstance(exc, OSError) else "the answer is not alertd's"
        print(f"alertd status: {text}", file=sys.stderr)
        return 1
    if "error" in answer:
        print(f"alertd status: the daemon says: {answer['error']}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(answer, indent=2))
    else:
        print(format_answer(answer), end="")
    return 0


# -- the text a person reads -------------------------------------------------------------------


def format_answer(answer: Mapping[str, Any]) -> str:
    """``alertd status``'s text for the daemon's ``answer`` (``ControlServer.snapshot``); every
    time in the daemon's ``[daemon] timezone``, named."""
    now = float(answer["now"])
    tz = zone(str(answer.get("timezone", "UTC")))

    def when(unix: float | None) -> str:
        if unix is None:
            return "never"
        shown = datetime.fromtimestamp(unix, tz).strftime("%Y-%m-%d %H:%M:%S %Z")
        later = f"in {duration(round(unix - now))}" if unix - now >= 1 else None
        return f"{shown} ({later or format_age(now - unix)})"

    def ago(unix: float | None) -> str:
        return "never" if unix is None else format_age(now - unix)

    lines = [
        f"alertd {answer['version']} (pid {answer['pid']}), up {duration(now - answer['started'])}:"
        f" {answer['status']}",
        "accounts:",
    ]
    for a in answer["accounts"]:
        head = f"  {a['name']} ({a['exchange']}): "
        if not a["enabled"]:
            lines.append(head + "disabled")
            continue
        state = (
            f"connected since {when(a['connected_since'])}" if a["connected"] else "DISCONNECTED"
        )
        lines.append(
            f"{head}{state}; last frame {ago(a['last_frame'])}; "
            f"{a['reconnects']} reconnect{'' if a['reconnects'] == 1 else 's'}"
        )
    box = answer["outbox"]
    if box["pending"]:
        channels = ", ".join(f"{c} {n}" for c, n in box["by_channel"].items())
        lines.append(
            f"outbox: {box['pending']} pending ({channels}), oldest due since "
            f"{when(box['oldest_pending'])}"
        )
    else:
        lines.append("outbox: nothing pending")
    d = answer["delivery"]
    lines.append(
        f"delivery since start: {d['delivered']} delivered, {d['failed']} failed sends, "
        f"{d['retries']} retries, {d['expired']} given up"
    )
    silences = answer["silences"]
    lines.append("silences:" if silences else "silences: none active")
    for s in silences:
        matchers = "".join(f" {k}={v}" for k, v in sorted(s["matchers"].items()))
        text = f"  {s['id']} rule={s['rule']}{matchers} until {when(s['ends'])}"
        text += f" by {s['created_by']}" if s["created_by"] else ""
        text += f"  # {s['comment']}" if s["comment"] else ""
        lines.append(text)
    sent = answer["last_sent"]
    lines.append("last sent:" if sent else "last sent: nothing yet")
    lines += [f"  {when(r['at'])}  {r['channel']}  [{r['severity']}] {r['title']}" for r in sent]
    lines.append(f"heartbeat: {_heartbeat(answer['heartbeat'])}")
    return "\n".join(lines) + "\n"


def _heartbeat(beat: Mapping[str, Any] | None) -> str:
    if beat is None:
        return "not configured"
    pings = f"{beat['sent']} pings sent, {beat['failed']} failed"
    if beat["unreachable"]:
        return f"service unreachable ({beat['unreachable']}); {pings}"
    if beat["healthy"] is None:
        return f"no health check yet; {pings}"
    verdict = "healthy" if beat["healthy"] else "UNHEALTHY"
    return f"{verdict}: {beat['reason']}; {pings}"
