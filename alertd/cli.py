"""The ``alertd`` command line. Each command's work lives in the module that owns it; this
file only declares arguments and dispatches, importing the owner lazily so that
``alertd --help`` and ``alertd check`` start fast."""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence

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
}


def _config_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "-c",
        "--config",
        required=True,
        metavar="CONFIG",
        help="the TOML configuration file",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
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
    p.add_argument(
        "--state-dir", metavar="DIR", help="override [daemon] state_dir ($STATE_DIRECTORY too)"
    )

    p = sub.add_parser("check", help="validate config, rules and templates; exit 0 when valid")
    _config_arg(p)

    p = sub.add_parser(
        "demo", help="simulator + daemon + example rules, alerts printed to the terminal"
    )
    p.add_argument(
        "--duration", type=float, metavar="SECONDS", help="stop by itself after this long"
    )
    p.add_argument("--seed", type=int, help="simulator seed (default: one that shows every rule)")
    p.add_argument(
        "--config", "-c", metavar="CONFIG", help="use this config instead of the built-in demo"
    )

    p = sub.add_parser("simulate", help="run the exchange simulator alone")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8765, help="port (0 picks a free one)")
    p.add_argument("--scenario", default="normal", help="scenario name (--list-scenarios)")
    p.add_argument("--seed", type=int, default=1, help="random seed (default 1)")
    p.add_argument(
        "--rate",
        type=float,
        help="frames per second for the flood scenario (default 10000); "
        "for other scenarios, actions per second per exchange (default about 1.7)",
    )
    p.add_argument("--list-scenarios", action="store_true", help="list scenarios and exit")

    p = sub.add_parser(
        "replay", help="run a capture through decoding and rules; print what would be sent"
    )
    _config_arg(p)
    p.add_argument("capture", metavar="CAPTURE", help="a capture file (JSON Lines)")
    p.add_argument("--events", action="store_true", help="also print each event as JSON")

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
        help="add it even if --rule matches no rule in the config or a --match key is not a "
        "label alerts carry",
    )
    s = silence.add_parser("list", help="list active silences")
    _config_arg(s)
    s.add_argument("--all", action="store_true", help="include expired ones")
    s = silence.add_parser("remove", help="remove a silence")
    _config_arg(s)
    s.add_argument("id", metavar="ID")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    module_name, func_name = COMMANDS[args.command].split(":")
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
    return code


if __name__ == "__main__":
    sys.exit(main())
