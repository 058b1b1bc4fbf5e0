"""Real signals sent to the test process become reload and stop requests."""

from __future__ import annotations

import os
import signal
from collections.abc import Callable

import trio
import trio.testing

from alertd.daemon.signals import watch_signals


class Recorder:
    """Supervisor stand-in: counts reloads (which can be held open) and stop requests."""

    def __init__(self) -> None:
        self.reloads = 0
        self.stops: list[signal.Signals] = []
        self.release = trio.Event()
        self.hold = False
        self.changed = trio.Event()

    async def on_reload(self) -> None:
        self.reloads += 1
        self._poke()
        if self.hold:
            await self.release.wait()

    def on_stop(self, signum: signal.Signals) -> None:
        self.stops.append(signum)
        self._poke()

    def _poke(self) -> None:
        self.changed.set()
        self.changed = trio.Event()

    async def wait_for(self, predicate: Callable[[], bool]) -> None:
        while not predicate():
            await self.changed.wait()


async def settle() -> None:
    """Let a just-sent signal reach its handler and every task react to it."""
    await trio.sleep(0.05)
    await trio.testing.wait_all_tasks_blocked()


async def test_sighup_asks_for_a_reload() -> None:
    """Each SIGHUP, one at a time, runs the reload callback once."""
    rec = Recorder()
    with trio.fail_after(5):
        async with trio.open_nursery() as nursery:
            await nursery.start(watch_signals, rec.on_reload, rec.on_stop)
            os.kill(os.getpid(), signal.SIGHUP)
            await rec.wait_for(lambda: rec.reloads == 1)
            os.kill(os.getpid(), signal.SIGHUP)
            await rec.wait_for(lambda: rec.reloads == 2)
            nursery.cancel_scope.cancel()
    assert rec.stops == []


async def test_sigterm_and_sigint_ask_for_a_stop() -> None:
    """SIGTERM and SIGINT call the stop callback with the signal, instead of killing us."""
    rec = Recorder()
    with trio.fail_after(5):
        async with trio.open_nursery() as nursery:
            await nursery.start(watch_signals, rec.on_reload, rec.on_stop)
            os.kill(os.getpid(), signal.SIGTERM)
            await rec.wait_for(lambda: len(rec.stops) == 1)
            os.kill(os.getpid(), signal.SIGINT)
            await rec.wait_for(lambda: len(rec.stops) == 2)
            nursery.cancel_scope.cancel()
    assert rec.stops == [signal.SIGTERM, signal.SIGINT]
    assert rec.reloads == 0


async def test_sighups_during_a_reload_coalesce_into_one_more_reload() -> None:
    """Three SIGHUPs during a running reload give exactly one further reload, not three or 0."""
    rec = Recorder()
    rec.hold = True
    with trio.fail_after(5):
        async with trio.open_nursery() as nursery:
            await nursery.start(watch_signals, rec.on_reload, rec.on_stop)
            os.kill(os.getpid(), signal.SIGHUP)
            await rec.wait_for(lambda: rec.reloads == 1)
            for _ in range(3):
                os.kill(os.getpid(), signal.SIGHUP)
                await settle()
            assert rec.reloads == 1  # still inside the first reload
            rec.hold = False
            rec.release.set()
            await rec.wait_for(lambda: rec.reloads == 2)
            await settle()
            assert rec.reloads == 2
            nursery.cancel_scope.cancel()


async def test_a_stop_during_a_slow_reload_is_seen_at_once() -> None:
    """SIGTERM is not stuck behind a reload that is still running."""
    rec = Recorder()
    rec.hold = True
    with trio.fail_after(5):
        async with trio.open_nursery() as nursery:
            await nursery.start(watch_signals, rec.on_reload, rec.on_stop)
            os.kill(os.getpid(), signal.SIGHUP)
            await rec.wait_for(lambda: rec.reloads == 1)
            os.kill(os.getpid(), signal.SIGTERM)
            await rec.wait_for(lambda: rec.stops == [signal.SIGTERM])
            nursery.cancel_scope.cancel()


async def test_a_failing_reload_does_not_stop_the_watcher() -> None:
    """A reload callback that raises is logged; the next SIGHUP still reloads."""
    calls = 0
    done = trio.Event()

    async def bad_reload() -> None:
        nonlocal calls
        calls += 1
        if calls == 2:
            done.set()
        raise RuntimeError("config exploded")

    with trio.fail_after(5):
        async with trio.open_nursery() as nursery:
            await nursery.start(watch_signals, bad_reload, lambda signum: None)
            os.kill(os.getpid(), signal.SIGHUP)
            await settle()
            os.kill(os.getpid(), signal.SIGHUP)
            await done.wait()
            nursery.cancel_scope.cancel()
    assert calls == 2
