"""The heap of a long-running ``alertd run``: what start-up built (the config, the compiled
rules and templates, apprise's plugins, every account's session state) lives as long as the
process, yet CPython's cyclic collector walks all of it at every full collection. With many
accounts that walk is most of the idle CPU and its pauses are the latency benchmark's tail
(bench/README.md, "Many accounts, second round": one pass over 680,000 objects took 0.84 s,
0.14 s frozen). ``settle`` runs once the daemon is up: one collection, then ``gc.freeze()``,
which moves every object alive into a generation the collector never walks (CPython's own
tool for long-lived processes).

The cost, and why it is bounded: a frozen object that later becomes cyclic garbage is never
freed (reference counting still frees everything else). That is at most one copy of what
start-up built, e.g. the first config's rules after a reload replaces them; what is built
after ``settle`` is collected as usual.

What start-up built is not all there when the daemon says it is up: the accounts connect
after that, at the connection limit's pace (5,000 of them take half a minute), and each
session's connection, decoder and buffers are as long-lived as the config. So ``keep_settled``
settles again a few times in the first minutes, each time at four times the previous delay:
what lives on by then is frozen too, and what was already frozen is not walked again. Each
settle can keep at most the cyclic garbage of that moment, so the cost stays bounded."""

from __future__ import annotations

import gc
import logging
from collections.abc import Sequence

import trio

log = logging.getLogger(__name__)

# Seconds after start-up at which ``keep_settled`` settles again.
SETTLE_AGAIN = (2.0, 8.0, 32.0, 128.0, 512.0)


def settle() -> int:
    """Collect once, then freeze every object alive now; how many are frozen."""
    gc.collect()
    gc.freeze()
    frozen = gc.get_freeze_count()
    log.info("daemon.heap_settled frozen=%d", frozen)
    return frozen


async def keep_settled(stopped: trio.Event, at: Sequence[float] = SETTLE_AGAIN) -> None:
    """``settle`` again at each of ``at`` (seconds from now), until ``stopped`` is set."""
    start = trio.current_time()
    for delay in at:
        with trio.move_on_at(start + delay):
            await stopped.wait()
            return
        settle()
