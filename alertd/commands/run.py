"""``alertd run -c CONFIG [--record DIR] [--state-dir DIR]``: the daemon, until a stop signal."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import NoReturn

import trio

from alertd.check import load_config
from alertd.config.errors import ConfigError
from alertd.config.model import Config
from alertd.config.state_dir import state_directory
from alertd.daemon import heap
from alertd.daemon.app import Daemon, StartupError
from alertd.daemon.logs import configure_logging, iter_secrets
from alertd.daemon.reload import failure_reason

log = logging.getLogger(__name__)


def main(args: argparse.Namespace) -> int:
    """``alertd run -c CONFIG [--record DIR] [--state-dir DIR]``."""
    try:
        config = load_config(args.config)
    except ConfigError as e:
        print(e.format(), file=sys.stderr)
        print(
            f"alertd: not started: {len(e.problems)} problem(s) in {args.config}", file=sys.stderr
        )
        return 2
    except Exception as e:  # a file the parser cannot take (nested 450 levels deep, ...)
        print(f"alertd: not started: {failure_reason(e, args.config)}", file=sys.stderr)
        return 2
    level = args.log_level or config.daemon.log_level
    masker = configure_logging(level, secrets=iter_secrets(config))
    record = args.record or config.daemon.record_dir
    daemon = Daemon(
        config=config,
        state_dir=resolve_state_dir(args.state_dir, config),
        config_path=args.config,
        record_dir=Path(record) if record else None,
        masker=masker,
        log_level_override=args.log_level,
    )
    code = 0
    try:
        trio.run(serve, daemon)
    except* StartupError as group:
        # except*: a stage that fails to start inside a nursery (metrics on a port in use)
        # arrives wrapped in an ExceptionGroup, and would otherwise print a traceback.
        for failure in leaf_exceptions(group):
            log.error("daemon.startup_failed %s", failure)
            print(f"alertd: {failure}", file=sys.stderr)
        code = 1
    if daemon.delivery_unfinished:
        exit_now(code)
    return code


async def serve(daemon: Daemon) -> None:
    """``daemon.run`` until it stops; once it is up, what start-up built is settled out of
    the cyclic collector's way (``daemon.heap``), then again as the accounts connect."""
    async with trio.open_nursery() as nursery:
        await nursery.start(daemon.run)
        heap.settle()
        nursery.start_soon(heap.keep_settled, daemon.stopped)


def resolve_state_dir(override: str | None, config: Config) -> Path:
    """``--state-dir``, else systemd's ``$STATE_DIRECTORY`` (first entry), else the config."""
    return state_directory(override, config.daemon.state_dir)


def leaf_exceptions(error: BaseException) -> Iterator[BaseException]:
    """The exceptions in a (nested) exception group, or the exception itself."""
    if isinstance(error, BaseExceptionGroup):
        for inner in error.exceptions:
            yield from leaf_exceptions(inner)
    else:
        yield error


def exit_now(code: int) -> NoReturn:
    """Exit without the interpreter's exit-time thread joins. apprise makes its service calls
    in ``concurrent.futures`` pools, which Python joins at exit even after trio abandoned the
    call: a service that never answers would hold the process until its own timeout (30 s by
    default), far past ``drain_timeout`` and the stop timeout systemd was promised. Nothing is
    lost: the outbox (SQLite) and the capture are closed, and the pending alert is sent on the
    next start."""
    log.warning(
        "daemon.exit_now code=%d (not waiting for delivery threads; unsent alerts stay in the "
        "outbox for the next start)",
        code,
    )
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
