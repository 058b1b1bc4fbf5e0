"""Signals as requests to the supervisor: SIGHUP asks for a reload, SIGTERM and SIGINT for a
shutdown.

Reloads run one at a time in their own task, so a stop signal is seen at once even during a
slow reload. A SIGHUP that arrives while a reload runs is remembered and causes exactly one
more reload afterwards (however many arrived): the config file may have changed again after
the running reload read it, so the last edit is never missed, and a burst of ``systemctl
reload`` calls does not queue up a burst of reloads.
"""

from __future__ import annotations

import logging
import signal
from collections.abc import Awaitable, Callable

import trio

log = logging.getLogger(__name__)

RELOAD_SIGNALS = frozenset({signal.SIGHUP})
STOP_SIGNALS = frozenset({signal.SIGTERM, signal.SIGINT})


async def watch_signals(
    on_reload: Callable[[], Awaitable[object]],
    on_stop: Callable[[signal.Signals], object],
    *,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Until cancelled, await ``on_reload()`` for SIGHUP and call ``on_stop(signum)`` for
    SIGTERM/SIGINT. Signal handlers are installed before ``task_status.started()``, so a
    signal sent after ``nursery.start`` returns is never lost or fatal.

    ``on_stop`` is called for every stop signal: a second one means the person insists, and
    the supervisor may cut the drain short. An exception from ``on_reload`` is logged and the
    watcher goes on (the supervisor keeps the old config on a bad reload; this is the last
    line of defence against a reload bug stopping the daemon). Cancelling this task while a
    reload runs cancels that reload. The handlers are restored on return.
    """
    # Buffer of one: a pending reload; further SIGHUPs while one is pending are coalesced.
    send, receive = trio.open_memory_channel[None](1)

    async def reloader() -> None:
        async for _ in receive:
            log.info("signal.reload")
            try:
                await on_reload()
            except Exception:
                log.exception("signal.reload_failed (the previous configuration stays in use)")

    with trio.open_signal_receiver(*RELOAD_SIGNALS, *STOP_SIGNALS) as signals:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(reloader)
            task_status.started()
            async for signum in signals:
                if signum in RELOAD_SIGNALS:
                    try:
                        send.send_nowait(None)
                    except trio.WouldBlock:
                        log.info("signal.reload_coalesced (a reload is already queued)")
                else:
                    log.info("signal.stop signal=%s", signal.Signals(signum).name)
                    on_stop(signal.Signals(signum))
