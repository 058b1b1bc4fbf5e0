"""``alertd simulate``: the exchange simulator alone, until Ctrl-C or SIGTERM (exit 0)."""

from __future__ import annotations

import argparse
import logging
import secrets
import signal
import sys

import trio

from alertd.simulator.scenarios import SCENARIOS
from alertd.simulator.server import PATHS, Simulator, serve


def listening_line(sim: Simulator) -> str:
    paths = ", ".join(f"{exchange}: {path}" for path, exchange in PATHS.items())
    return (
        f"simulator listening on ws://{sim.host}:{sim.port} ({paths}) "
        f"scenario={sim.scenario.name} seed={sim.seed}"
    )


def fresh_seed() -> int:
    """A seed for a simulator started without ``--seed``: another world each start, so a
    restart does not replay the same orders (and ids) to a daemon that remembers them."""
    return secrets.randbelow(2**31)


async def _run(args: argparse.Namespace) -> None:
    seed = fresh_seed() if args.seed is None else args.seed
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async with trio.open_nursery() as nursery:
            sim: Simulator = await nursery.start(
                lambda task_status: serve(
                    host=args.host,
                    port=args.port,
                    scenario=args.scenario,
                    seed=seed,
                    rate=args.rate,
                    task_status=task_status,
                )
            )
            print(listening_line(sim), flush=True)
            async for signum in signals:
                logging.getLogger(__name__).info("simulator.stopping signal=%s", signum)
                nursery.cancel_scope.cancel()
                break


def main(args: argparse.Namespace) -> int:
    if args.list_scenarios:
        width = max(map(len, SCENARIOS))
        for name, scenario in SCENARIOS.items():
            print(f"{name:<{width}}  {scenario.description}")
        return 0
    if args.scenario not in SCENARIOS:
        print(
            f"alertd simulate: unknown scenario {args.scenario!r}; "
            f"known: {', '.join(SCENARIOS)} (see --list-scenarios)",
            file=sys.stderr,
        )
        return 2
    if args.rate is not None and args.rate <= 0:
        print("alertd simulate: --rate must be a positive number", file=sys.stderr)
        return 2
    if not logging.getLogger().handlers:
        level = (getattr(args, "log_level", None) or "info").upper()
        logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    try:
        trio.run(_run, args)
    except (OSError, ExceptionGroup) as exc:
        # trio hands a failed listen back inside an exception group (the nursery's)
        error = _os_error(exc)
        if error is None:
            raise
        print(
            f"alertd simulate: cannot listen on {args.host}:{args.port}: "
            f"{error.strerror or type(error).__name__} (pick another --port, or 0 for a free one)",
            file=sys.stderr,
        )
        return 1
    return 0


def _os_error(exc: BaseException) -> OSError | None:
    """The OSError in ``exc`` or in the exception groups around it, else None."""
    if isinstance(exc, OSError):
        return exc
    if isinstance(exc, BaseExceptionGroup):
        for inner in exc.exceptions:
            found = _os_error(inner)
            if found is not None:
                return found
    return None
