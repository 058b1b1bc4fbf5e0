"""The ``alertd`` command line. Each command's work lives in the module that owns it; this
file only declares arguments and dispatches, importing the owner lazily so that
``alertd --help`` and ``alertd check`` start fast."""

from __future__ import annotations

import argparse
import importlib
import math
import os
import sys
import traceback
from collections.abc import Mapping, Sequence
from typing import NoReturn

from alertd import __version__

# command name -> "module:function"; the function takes the parsed args and returns an exit code
COMMANDS: dict[str, str] = {
    "run": "alertd.commands.run:main",
    "check": "alertd.check.command:main",
    "demo": "alertd.commands.demo:main",
    "simulate": "alertd.simulator.cli:main",
    "replay": "alertd.commands.replay:main",
    "test-notify": "alertd.commands.test_notify:main",
    "silence": "alertd.commands.silence:main",
    "status": "alertd.commands.status:main",
}
REPLAY_DIFF = "alertd.commands.replay_diff:main"  # `replay --diff OLD NEW CAPTURE`

# Where every command finds its config without -c: $ALERTD_CONFIG, else the file the shipped
# unit runs (systemd/alertd.service), so `alertd status` on the machine reads what runs.
DEFAULT_CONFIG = "/etc/alertd/alertd.toml"
CONFIG_ENV = "ALERTD_CONFIG"


# What `alertd` exits with when a command fails on something it did not foresee (a bug): not 1
# or 2, which mean "your input is wrong", so scripts and tests can tell them apart.
EXIT_INTERNAL = 70  # EX_SOFTWARE


class _Parser(argparse.ArgumentParser):
    """argparse, with a usage mistake answered in one line (the usage itself is one
    ``--help`` away) and exit code 2, as argparse does."""

    def error(self, message: str) -> NoReturn:
        from alertd.config.errors import one_line  # an argument may hold a newline

        self.exit(2, f"{self.prog}: {one_line(message)} (see {self.prog} --help)\n")


def _port(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number") from None
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"{port} is not a port (0 to 65535; 0 picks a free one)")
    return port


def _positive(text: str) -> float:
    """A finite number above zero (``nan``, ``inf`` and ``-1`` are refused)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"{text!r} must be a number above zero")
    return value


def _config_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "-c",
        "--config",
        metavar="CONFIG",
        help=f"the TOML configuration file (default: ${CONFIG_ENV}, else {DEFAULT_CONFIG})",
    )


def _state_dir_arg(p: argparse.ArgumentParser, help: str) -> None:
    p.add_argument("--state-dir", metavar="DIR", help=help)


def config_path(given: str | None, environ: Mapping[str, str]) -> str | None:
    """The config a command reads: ``-c``, else ``$ALERTD_CONFIG``, else ``DEFAULT_CONFIG``
    when that file exists; None when there is none to read."""
    if given:
        return given
    if environ.get(CONFIG_ENV):
        return environ[CONFIG_ENV]
    return DEFAULT_CONFIG if os.path.exists(DEFAULT_CONFIG) else None


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="alertd",
        description=(
            "Watch exchange account streams (Piexgo, Cryptology) and alert people through "
            "Slack, Telegram, email or any apprise URL."
        ),
    )
    parser.add_argument("--version", action="version", version=f"alertd {__version__}")
    parser.add_argument(
        "--log-level",
        choices=["debug", "info", "warning", "error"],
        help="override the configured log level",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    p = sub.add_parser("run", help="run the daemon")
    _config_arg(p)
    p.add_argument("--record", metavar="DIR", help="also write every received frame to DIR")
    _state_dir_arg(p, "override [daemon] state_dir ($STATE_DIRECTORY too)")

    p = sub.add_parser("check", help="validate config, rules and templates; exit 0 when valid")
    _config_arg(p)
    p.add_argument("file", nargs="?", metavar="FILE", help="the config to check (as -c)")
    p.add_argument(
        "--no-secrets",
        action="store_true",
        help="check everything but whether the secret references resolve (for a config kept "
        "in git, checked in CI or on a laptop without the service's credentials)",
    )

    p = sub.add_parser(
        "demo", help="simulator + daemon + example rules, alerts printed to the terminal"
    )
    p.add_argument(
        "--duration", type=_positive, metavar="SECONDS", help="stop by itself after this long"
    )
    p.add_argument("--seed", type=int, help="simulator seed (default: one that shows every rule)")
    p.add_argument(
        "--config", "-c", metavar="CONFIG", help="use this config instead of the built-in demo"
    )

    p = sub.add_parser("simulate", help="run the exchange simulator alone")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    p.add_argument(
        "--port", type=_port, default=8765, help="port (default 8765; 0 picks a free one)"
    )
    p.add_argument(
        "--scenario", default="normal", help="scenario name (default normal; --list-scenarios)"
    )
    p.add_argument(
        "--seed",
        type=int,
        help="random seed: the same seed gives the same world (orders, ids, prices); default: "
        "a new one each start, printed in the listening line",
    )
    p.add_argument(
        "--rate",
        type=_positive,
        help="frames per second for the flood scenario (default 10000); "
        "for other scenarios, actions per second per exchange (default about 1.7)",
    )
    p.add_argument("--list-scenarios", action="store_true", help="list scenarios and exit")

    p = sub.add_parser(
        "replay", help="run a capture through the daemon on its clock; print what would be sent"
    )
    _config_arg(p)
    p.add_argument("capture", metavar="CAPTURE", help="a capture file (JSON Lines)")
    p.add_argument("--events", action="store_true", help="also print each event as JSON")
    p.add_argument(
        "--diff",
        nargs=2,
        metavar=("OLD", "NEW"),
        help="replay with both configs and print the notifications only one of them sends "
        "(exit 0 the same, 1 they differ); -c is not used",
    )
    _state_dir_arg(p, "use the silences of the state database in DIR (default: start with none)")

    p = sub.add_parser("status", help="ask the daemon running on this machine how it is")
    _config_arg(p)
    p.add_argument("--json", action="store_true", help="print the answer as JSON, for scripts")
    _state_dir_arg(p, "the daemon's state directory (as alertd run's)")
    p.add_argument(
        "--socket",
        metavar="PATH",
        help="the control socket (default: control.sock in $RUNTIME_DIRECTORY, else the state dir)",
    )

    p = sub.add_parser("test-notify", help="send one test message through a channel")
    _config_arg(p)
    p.add_argument("channel", metavar="CHANNEL", help="a channel name from [channels]")

    p = sub.add_parser("silence", help="mute alerts for a while")
    silence = p.add_subparsers(dest="silence_command", metavar="ACTION", required=True)
    s = silence.add_parser("add", help="add a silence")
    _config_arg(s)
    s.add_argument("--rule", required=True, help="rule name (glob allowed)")
    s.add_argument(
        "--match",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="only alerts whose label KEY equals VALUE (repeatable)",
    )
    s.add_argument("--for", dest="duration", required=True, metavar="DURATION", help='e.g. "2h"')
    s.add_argument("--comment", default="", help="why")
    s.add_argument(
        "--force",
        action="store_true",
        help="add it even if --rule matches no rule in the config, a --match key is not a "
        "label alerts carry or its value no configured account, rule, symbol or currency has",
    )
    s = silence.add_parser("list", help="list active silences")
    _config_arg(s)
    s.add_argument("--all", action="store_true", help="include expired ones")
    s = silence.add_parser("remove", help="remove a silence")
    _config_arg(s)
    s.add_argument("id", metavar="ID")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command ``argv`` names and return its exit code: 0 done, 1 it failed on the
    input, 2 the input cannot be used (a usage mistake, a bad file or value),
    ``EXIT_INTERNAL`` a bug, reported in one line (``--log-level debug`` shows the
    traceback)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    target: str | None = None  # another function than the command's own
    if getattr(args, "file", None):  # `alertd check FILE`
        if args.config and args.config != args.file:
            parser.error(f"two configs given ({args.config} and {args.file}): check one at a time")
        args.config = args.file
    if getattr(args, "diff", None):  # `replay --diff OLD NEW` names both configs
        if args.events:
            parser.error("replay: --events and --diff do not go together")
        target = REPLAY_DIFF
    elif args.command != "demo" and hasattr(args, "config"):  # the demo has a built-in one
        args.config = config_path(args.config, os.environ)
        if args.config is None and not getattr(args, "socket", None):
            parser.error(f"no config: give -c CONFIG, set ${CONFIG_ENV}, or write {DEFAULT_CONFIG}")
    module_name, func_name = (target or COMMANDS[args.command]).split(":")
    func = getattr(importlib.import_module(module_name), func_name)
    try:
        code: int = func(args)
        sys.stdout.flush()
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # `alertd replay ... | head`: the reader left; that is not an error worth a traceback.
        # Point stdout at devnull so the interpreter's final flush does not raise again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141  # what a shell reports for a process ended by SIGPIPE
    except Exception as exc:
        if args.log_level == "debug":
            raise
        print(_internal_error(args, exc), file=sys.stderr)
        return EXIT_INTERNAL
    return code


def _internal_error(args: argparse.Namespace, exc: BaseException) -> str:
    """One line for a failure no command foresaw: where it happened and the exception's type
    (its text could quote a secret)."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]  # trio's groups: the first failure is the one to name
    frames = traceback.extract_tb(exc.__traceback__)
    where = f" at {os.path.basename(frames[-1].filename)}:{frames[-1].lineno}" if frames else ""
    command = " ".join(
        part for part in (args.command, getattr(args, "silence_command", None)) if part
    )
    return (
        f"alertd {command}: internal error: {type(exc).__name__}{where} (a bug: please report "
        "it; `alertd --log-level debug ...` shows the traceback)"
    )


if __name__ == "__main__":
    sys.exit(main())
