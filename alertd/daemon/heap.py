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
after ``settle`` is collected as usual."""

from __future__ import annotations

import gc
import logging

log = logging.getLogger(__name__)


def settle() -> int:
    """Collect once, then freeze every object alive now; how many are frozen."""
    gc.collect()
    gc.freeze()
    frozen = gc.get_freeze_count()
    log.info("daemon.heap_settled frozen=%d", frozen)
    return frozen
