"""sd_notify over a real AF_UNIX datagram socket, and the watchdog task on a virtual clock."""

from __future__ import annotations

import logging
import os
import time
from functools import partial

import pytest
import trio
import trio.testing

from alertd.daemon.sdnotify import SdNotifier, run_watchdog

from .conftest import NotifyReceiver


def test_ready_and_status_reach_a_path_socket(notify_socket: NotifyReceiver) -> None:
    """READY=1 and a UTF-8 STATUS arrive as one datagram at a path $NOTIFY_SOCKET."""
    notifier = SdNotifier.from_env({"NOTIFY_SOCKET": notify_socket.env_value})
    assert notifier.ready(status="3/3 accounts connected · 0 pending") is True
    assert notify_socket.messages() == [
        {"READY": "1", "STATUS": "3/3 accounts connected · 0 pending"}
    ]


def test_messages_reach_an_abstract_socket(abstract_notify_socket: NotifyReceiver) -> None:
    """An ``@name`` $NOTIFY_SOCKET is the abstract namespace, as systemd itself hands out."""
    notifier = SdNotifier.from_env({"NOTIFY_SOCKET": abstract_notify_socket.env_value})
    notifier.status("starting")
    notifier.stopping()
    notifier.watchdog()
    assert abstract_notify_socket.messages() == [
        {"STATUS": "starting"},
        {"STOPPING": "1"},
        {"WATCHDOG": "1"},
    ]


def test_reloading_carries_the_monotonic_clock(notify_socket: NotifyReceiver) -> None:
    """RELOADING=1 comes with MONOTONIC_USEC read from CLOCK_MONOTONIC, as systemd 253 needs."""
    notifier = SdNotifier.from_env({"NOTIFY_SOCKET": notify_socket.env_value})
    before = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    notifier.reloading()
    after = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    [message] = notify_socket.messages()
    assert message["RELOADING"] == "1"
    assert before <= int(message["MONOTONIC_USEC"]) <= after


def test_a_multiline_status_stays_one_field(notify_socket: NotifyReceiver) -> None:
    """A newline in a status text cannot inject a second sd_notify field."""
    notifier = SdNotifier.from_env({"NOTIFY_SOCKET": notify_socket.env_value})
    notifier.status("reload failed:\nREADY=1")
    assert notify_socket.messages() == [{"STATUS": "reload failed: READY=1"}]


def test_without_notify_socket_everything_is_a_no_op() -> None:
    """Run outside systemd, the notifier sends nothing and raises nothing."""
    notifier = SdNotifier.from_env({})
    assert not notifier.enabled
    assert notifier.ready() is False
    assert notifier.watchdog_interval() is None


def test_an_unreachable_socket_is_logged_once_not_raised(caplog: pytest.LogCaptureFixture) -> None:
    """A vanished $NOTIFY_SOCKET costs one warning for a streak of failures, never an error."""
    notifier = SdNotifier.from_env({"NOTIFY_SOCKET": "/nonexistent/alertd/notify"})
    with caplog.at_level(logging.WARNING, logger="alertd.daemon.sdnotify"):
        assert notifier.ready() is False
        assert notifier.watchdog() is False
    assert [r.message.split()[0] for r in caplog.records] == ["sdnotify.send_failed"]


def test_watchdog_interval_is_half_of_watchdog_usec() -> None:
    """WATCHDOG_USEC=30s gives a 15 s ping interval, for us or when WATCHDOG_PID names us."""
    assert SdNotifier.from_env({"WATCHDOG_USEC": "30000000"}).watchdog_interval() == 15.0
    own = {"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": str(os.getpid())}
    assert SdNotifier.from_env(own).watchdog_interval() == 15.0


def test_watchdog_meant_for_another_process_is_ignored() -> None:
    """A WATCHDOG_PID naming another process (an inherited env) means no watchdog here."""
    env = {"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": str(os.getpid() + 1)}
    assert SdNotifier.from_env(env).watchdog_interval() is None
    assert SdNotifier.from_env({"WATCHDOG_USEC": "0"}).watchdog_interval() is None
    assert SdNotifier.from_env({"WATCHDOG_USEC": "soon"}).watchdog_interval() is None


def _watchdog_notifier(receiver: NotifyReceiver, seconds: float) -> SdNotifier:
    return SdNotifier.from_env(
        {"NOTIFY_SOCKET": receiver.env_value, "WATCHDOG_USEC": str(int(seconds * 1e6))}
    )


async def test_watchdog_pings_at_half_the_interval(
    notify_socket: NotifyReceiver, autojump_clock: trio.testing.MockClock
) -> None:
    """With WatchdogSec=30 a healthy loop pings at start and then every 15 s."""
    notifier = _watchdog_notifier(notify_socket, 30)
    async with trio.open_nursery() as nursery:
        await nursery.start(run_watchdog, notifier, lambda: True)
        await trio.sleep(60.5)
        nursery.cancel_scope.cancel()
    assert notify_socket.messages() == [{"WATCHDOG": "1"}] * 5  # t = 0, 15, 30, 45, 60


async def test_watchdog_stops_pinging_while_unhealthy_and_resumes_after(
    notify_socket: NotifyReceiver, autojump_clock: trio.testing.MockClock
) -> None:
    """While the health check says no, no ping is sent; once it says yes, pings resume."""
    notifier = _watchdog_notifier(notify_socket, 30)
    healthy = True
    async with trio.open_nursery() as nursery:
        await nursery.start(run_watchdog, notifier, lambda: healthy)
        await trio.sleep(16)
        assert len(notify_socket.messages()) == 2  # t = 0, 15
        healthy = False
        await trio.sleep(60)
        assert notify_socket.messages() == []
        healthy = True
        await trio.sleep(1.5)  # retried at every probe, so it resumes within a second
        assert notify_socket.messages() == [{"WATCHDOG": "1"}]
        nursery.cancel_scope.cancel()


async def test_watchdog_skips_the_ping_when_the_loop_lags(
    notify_socket: NotifyReceiver, autojump_clock: trio.testing.MockClock
) -> None:
    """A loop that wakes a sleeping task seconds late is unhealthy: that ping is not sent."""
    notifier = _watchdog_notifier(notify_socket, 30)
    async with trio.open_nursery() as nursery:
        await nursery.start(partial(run_watchdog, notifier, lambda: True, max_lag=2.0))
        notify_socket.messages()  # the ping at start
        await trio.sleep(14.5)
        # Stand-in for a loop blocked for 10 s: every sleeper wakes 10 s late.
        autojump_clock.jump(10)
        await trio.sleep(0.01)
        assert notify_socket.messages() == []
        await trio.sleep(1.1)  # the loop is prompt again at the next probe
        assert notify_socket.messages() == [{"WATCHDOG": "1"}]
        nursery.cancel_scope.cancel()


async def test_watchdog_health_check_that_raises_counts_as_unhealthy(
    notify_socket: NotifyReceiver, autojump_clock: trio.testing.MockClock
) -> None:
    """A health check that raises withholds the ping instead of killing the daemon."""

    def broken() -> bool:
        raise RuntimeError("boom")

    notifier = _watchdog_notifier(notify_socket, 2)
    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            await nursery.start(run_watchdog, notifier, broken)
            await trio.sleep(10)
            nursery.cancel_scope.cancel()
    assert notify_socket.messages() == [{"WATCHDOG": "1"}]  # only the one at start


async def test_watchdog_task_returns_when_there_is_no_watchdog() -> None:
    """Without WATCHDOG_USEC the task starts and returns, leaving nothing running."""
    with trio.fail_after(1):
        async with trio.open_nursery() as nursery:
            await nursery.start(run_watchdog, SdNotifier.from_env({}), lambda: True)
