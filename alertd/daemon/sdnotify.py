"""sd_notify: tell systemd we are ready, reloading, stopping, alive, and what we are doing.

Hand-written on purpose: the protocol is one datagram of ``KEY=value`` lines sent to the
``AF_UNIX`` socket named by ``$NOTIFY_SOCKET`` (a path, or an abstract name written with a
leading ``@``). The ``sdnotify`` package is unmaintained and ``systemd-python`` needs
libsystemd headers to build; neither is worth a dependency for a 20-line send.

Sending never blocks the event loop (``MSG_DONTWAIT``) and never raises: a notification that
cannot be sent is logged and dropped, because systemd being unreachable must not stop alerting.

``run_watchdog`` is the trio task that sends ``WATCHDOG=1`` at half of ``$WATCHDOG_USEC``, and
only while the event loop is healthy, so that systemd restarts a daemon whose loop is stuck.
"""

from __future__ import annotations

import logging
import math
import os
import socket
import time
from collections.abc import Callable, Mapping

import attrs
import trio

log = logging.getLogger(__name__)

# How often the watchdog task wakes to measure event-loop lag, at most. Short enough that one
# blocked stretch of the loop is seen between two pings, long enough to cost nothing.
PROBE_INTERVAL = 1.0
# Lag above which the loop counts as unhealthy when the caller gives no ``max_lag``: a loop
# that cannot wake a sleeping task within 5 s is not reading its websockets either.
DEFAULT_MAX_LAG = 5.0


def _socket_address(value: str) -> str | None:
    """The ``AF_UNIX`` address for a ``$NOTIFY_SOCKET`` value, or None if we cannot use it."""
    if value.startswith("@"):
        return "\0" + value[1:]  # Linux abstract namespace
    if value.startswith("/"):
        return value
    return None  # e.g. "vsock:..." (systemd >= 254, VMs): not something alertd runs under


def _encode(value: object) -> str:
    if value is True:
        return "1"
    if value is False:
        return "0"
    # One field is one line: a newline in a STATUS text would start a bogus field.
    return " ".join(str(value).splitlines())


@attrs.define
class SdNotifier:
    """Sends sd_notify messages; a no-op when not started by systemd (no ``$NOTIFY_SOCKET``).

    ``watchdog_usec`` is ``$WATCHDOG_USEC`` when it is meant for this process (``$WATCHDOG_PID``
    unset or equal to our pid), else None.
    """

    address: str | None = None
    watchdog_usec: int | None = None
    _warned: bool = attrs.field(default=False, init=False, repr=False)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> SdNotifier:
        env = os.environ if environ is None else environ
        raw = env.get("NOTIFY_SOCKET", "")
        address = _socket_address(raw) if raw else None
        if raw and address is None:
            log.warning("sdnotify.unsupported_socket value=%r (expected a path or @name)", raw)
        return cls(address=address, watchdog_usec=_watchdog_usec(env))

    @property
    def enabled(self) -> bool:
        return self.address is not None

    def notify(self, **fields: object) -> bool:
        """Send ``KEY=value`` fields in one datagram, e.g. ``notify(READY=1, STATUS="ok")``.

        Returns True when the datagram was handed to the kernel, False when disabled or the
        send failed (logged once per failure streak, never raised)."""
        if self.address is None or not fields:
            return False
        message = "\n".join(f"{key}={_encode(value)}" for key, value in fields.items())
        try:
            # A socket per message, as libsystemd does: nothing to close, and pings are rare.
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
                sock.sendto(message.encode("utf-8"), socket.MSG_DONTWAIT, self.address)
        except OSError as exc:
            if not self._warned:
                log.warning(
                    "sdnotify.send_failed socket=%r error=%s (systemd will not see status "
                    "updates; check NotifyAccess= and that the socket exists)",
                    self.address.replace("\0", "@"),
                    exc,
                )
                self._warned = True
            return False
        self._warned = False
        return True

    def ready(self, status: str | None = None) -> bool:
        if status is None:
            return self.notify(READY=1)
        return self.notify(READY=1, STATUS=status)

    def status(self, text: str) -> bool:
        return self.notify(STATUS=text)

    def reloading(self) -> bool:
        """``RELOADING=1`` with ``MONOTONIC_USEC`` (CLOCK_MONOTONIC), which systemd >= 253
        requires to match a reload to its ``READY=1`` under ``Type=notify-reload``."""
        usec = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        return self.notify(RELOADING=1, MONOTONIC_USEC=usec)

    def stopping(self) -> bool:
        return self.notify(STOPPING=1)

    def watchdog(self) -> bool:
        return self.notify(WATCHDOG=1)

    def extend_timeout(self, seconds: float) -> bool:
        """Ask for ``seconds`` more before systemd's start/stop timeout (e.g. while draining)."""
        return self.notify(EXTEND_TIMEOUT_USEC=math.ceil(seconds * 1_000_000))

    def watchdog_interval(self) -> float | None:
        """Seconds between pings (half of ``$WATCHDOG_USEC``), or None when no watchdog."""
        if self.watchdog_usec is None:
            return None
        return self.watchdog_usec / 2 / 1_000_000


def _watchdog_usec(env: Mapping[str, str]) -> int | None:
    raw_usec = env.get("WATCHDOG_USEC", "")
    raw_pid = env.get("WATCHDOG_PID", "")
    if not raw_usec:
        return None
    try:
        usec = int(raw_usec)
        if raw_pid and int(raw_pid) != os.getpid():
            return None  # inherited from a parent that is the one being watched
    except ValueError:
        log.warning("sdnotify.bad_watchdog_env WATCHDOG_USEC=%r WATCHDOG_PID=%r", raw_usec, raw_pid)
        return None
    return usec if usec > 0 else None


def _healthy(health_check: Callable[[], bool]) -> bool:
    try:
        return bool(health_check())
    except Exception:
        log.exception("watchdog.health_check_failed")
        return False


async def run_watchdog(
    notifier: SdNotifier,
    health_check: Callable[[], bool] = lambda: True,
    *,
    max_lag: float | None = None,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Send ``WATCHDOG=1`` every ``notifier.watchdog_interval()`` seconds while healthy.

    Healthy means: ``health_check()`` returns true, and the event loop woke this task within
    ``max_lag`` seconds of when it asked to be woken (a loop that is blocked or starved by
    busy tasks stops pinging, so systemd restarts it once ``WatchdogSec=`` passes without
    one). A ping that is due while unhealthy is retried at every probe, so a short stall
    delays the ping instead of costing a whole interval. Returns at once when there is no
    watchdog. Cancel to stop.
    """
    interval = notifier.watchdog_interval()
    task_status.started()
    if interval is None:
        return
    limit = min(DEFAULT_MAX_LAG, interval / 2) if max_lag is None else max_lag
    probe = min(PROBE_INTERVAL, interval / 4)
    log.info("watchdog.start interval=%.3f max_lag=%.3f", interval, limit)
    notifier.watchdog()  # the first ping right away: startup may have taken a while
    last_ping = trio.current_time()
    skipping = False
    while True:
        wake_at = trio.current_time() + probe
        await trio.sleep_until(wake_at)
        now = trio.current_time()
        if now - last_ping < interval:
            continue
        lag = now - wake_at
        reason = None
        if lag > limit:
            reason = f"loop_lag lag={lag:.3f} limit={limit:.3f}"
        elif not _healthy(health_check):
            reason = "unhealthy"
        if reason is not None:
            if not skipping:
                log.warning("watchdog.skip reason=%s", reason)
            skipping = True
            continue
        if skipping:
            log.info("watchdog.resume late_by=%.3f", now - last_ping - interval)
        skipping = False
        notifier.watchdog()
        last_ping = now
