"""A virtual trio clock for running the daemon over a capture (``alertd replay``).

Time stands still while any task can run, and jumps to the next deadline (a capture record's
time, a rule's timer, a group's flush) the moment every task waits. That is
``MockClock(autojump_threshold=0)``, with one difference that matters here: a task waiting for
a worker thread (SQLite, which every stage after the engine writes to) is not idle, so the
clock does not jump while one is busy. With MockClock it would, and a group's flush or the
next record could overtake an alert still being written, making the output depend on how fast
the disk was.

The runner asks ``deadline_to_sleep_time`` exactly when no task is runnable; that is where the
clock jumps. Nothing in replay waits on a socket, so "every task waits" is "waits on trio".
"""

from __future__ import annotations

import math
import types

import trio
import trio.abc
import trio.lowlevel

# A busy worker thread finishes by waking the run loop itself; this only bounds each wait.
THREAD_POLL = 0.05  # real seconds
IDLE_FOREVER = 86_400.0  # real seconds to wait when nothing at all is scheduled (a deadlock)

_TO_THREAD: types.CodeType = trio.to_thread.run_sync.__code__


def waiting_for_a_thread() -> bool:
    """Whether any task of the current run is suspended in ``trio.to_thread.run_sync``."""
    tasks = [trio.lowlevel.current_root_task()]
    while tasks:
        task = tasks.pop()
        if task is None:
            continue
        if any(frame.f_code is _TO_THREAD for frame, _ in task.iter_await_frames()):
            return True
        for nursery in task.child_nurseries:
            tasks.extend(nursery.child_tasks)
    return False


class VirtualClock(trio.abc.Clock):
    """Starts at ``start`` (trio seconds; replay uses the capture's Unix time, so trio time and
    capture time are one) and moves only by jumping to the next deadline when all is idle."""

    def __init__(self, start: float = 0.0) -> None:
        self._now = start
        self.jumps = 0

    def start_clock(self) -> None:
        pass

    def current_time(self) -> float:
        return self._now

    def deadline_to_sleep_time(self, deadline: float) -> float:
        if deadline <= self._now:
            return 0.0
        if waiting_for_a_thread():
            return THREAD_POLL
        if math.isinf(deadline):
            return IDLE_FOREVER
        self._now = deadline
        self.jumps += 1
        return 0.0
