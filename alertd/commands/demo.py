"""``alertd demo``: the exchange simulator, the daemon with example rules (``demo.toml``
beside this module), and every alert printed to the terminal. No set-up, no network beyond
loopback, no files left behind (the state database lives in a temporary directory).

A few seconds in, the simulator drops the Piexgo connection, so the demo also shows what
alertd says when the watching itself is impaired: stream down, back, and the blind window.
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
from functools import partial
from importlib import resources
from pathlib import Path

import trio

from alertd.check import parse_config, read_config
from alertd.config.errors import ConfigError
from alertd.config.model import Config
from alertd.daemon.app import Daemon
from alertd.daemon.logs import configure_logging
from alertd.simulator.server import Simulator, serve

log = logging.getLogger(__name__)

DROP_AFTER = 8.0  # seconds into the demo when the simulator drops the Piexgo connection
# A seed whose first half minute shows every demo rule (fills, the USDT threshold, refused
# orders) so that a first-time user sees an alert of each demo rule without waiting.
DEFAULT_SEED = 181


def demo_config_text() -> str:
    return resources.files("alertd.commands").joinpath("demo.toml").read_text(encoding="utf-8")


def build_config(port: int, path: str | None = None) -> Config:
    """The built-in demo config pointed at the simulator on ``port``, or the file at ``path``
    (where ``{port}`` in account URLs is replaced the same way)."""
    if path is None:
        text, name = demo_config_text(), "demo.toml"
    else:
        text, name = Path(path).read_text(encoding="utf-8"), path
    config, problems = parse_config(text.replace("{port}", str(port)), file=name)
    if config is None or problems:
        raise ConfigError(problems)
    return config


async def _misbehave(sim: Simulator) -> None:
    await trio.sleep(DROP_AFTER)
    print("demo: the simulator drops the Piexgo connection now", flush=True)
    sim.drop_connections("piexgo", reason="simulated drop")


async def run_demo(
    *, duration: float | None, seed: int, config_path: str | None, state_dir: Path
) -> None:
    """Run until ``duration`` passes, or until Ctrl-C / SIGTERM."""
    async with trio.open_nursery() as nursery:
        sim = await nursery.start(partial(serve, port=0, seed=seed))
        config = build_config(sim.port, config_path)
        daemon = Daemon(config=config, state_dir=state_dir)
        print(
            f"alertd demo: simulator on ws://127.0.0.1:{sim.port}, "
            f"{len(config.accounts)} accounts, {len(config.rules)} rules; "
            "alerts appear below (Ctrl-C stops)",
            flush=True,
        )
        nursery.start_soon(_misbehave, sim)
        if duration is not None:
            nursery.start_soon(_stop_after, duration, daemon)
        await daemon.run()
        nursery.cancel_scope.cancel()
    engine = daemon.statistics().engine
    fired = 0 if engine is None else engine.alerts_out
    print(f"alertd demo: stopped after {fired} alerts", flush=True)


async def _stop_after(seconds: float, daemon: Daemon) -> None:
    await trio.sleep(seconds)
    daemon.request_stop()


def main(args: argparse.Namespace) -> int:
    """``alertd demo [--duration S] [--seed N] [--config FILE]``."""
    if args.duration is not None and args.duration <= 0:
        print("alertd demo: --duration must be a positive number of seconds", file=sys.stderr)
        return 2
    if args.config is not None:
        # Check the file up front (with a dummy port) so a mistake is reported before the
        # simulator starts, with every problem and its line.
        _, problems = read_config(args.config)
        if problems and not all("{port}" in p.message for p in problems):
            print(ConfigError(problems).format(), file=sys.stderr)
            return 2
    configure_logging(args.log_level or "warning")
    with tempfile.TemporaryDirectory(prefix="alertd-demo-") as state:
        try:
            trio.run(
                partial(
                    run_demo,
                    duration=args.duration,
                    seed=DEFAULT_SEED if args.seed is None else args.seed,
                    config_path=args.config,
                    state_dir=Path(state),
                )
            )
        except ConfigError as e:
            print(e.format(), file=sys.stderr)
            return 2
    return 0
