"""Prometheus metrics: what the stages count, and the optional endpoint that exposes them.

The stages call plain methods (``frame(account)``, ``delivered(channel, latency)``...) on a
``Metrics`` or, when ``[daemon] metrics_listen`` is unset, on a ``NullMetrics`` that does
nothing; both satisfy ``MetricsSink``. ``Metrics`` keeps its own ``CollectorRegistry``, so two
daemons in one test process never share counters, and exposes no process/GC collectors of
another registry by accident.

The endpoint is prometheus-client's own threaded WSGI server rather than an HTTP server on
trio: a scrape is then answered even while the event loop is stuck, which is exactly when an
operator wants to look; it is no code of ours; and prometheus-client's metric updates are
lock-protected, so stages on the trio thread and scrapes on the server thread do not race.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Iterable
from typing import Any, Protocol

import trio
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

from alertd import __version__
from alertd.config.values import parse_listen

log = logging.getLogger(__name__)

# Delivery latency is from an alert entering the outbox to the service accepting it, retries
# and quiet hours included, so the buckets run from sub-second to hours.
LATENCY_BUCKETS = (0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600, 14400)
# How long stopping the endpoint may take: serve_forever polls for shutdown every 0.5 s.
SHUTDOWN_TIMEOUT = 5.0


class MetricsError(Exception):
    """The metrics endpoint cannot be set up as configured."""


class MetricsSink(Protocol):
    """What the stages call; implemented by ``Metrics`` and ``NullMetrics``."""

    def frame(self, account: str, n: int = 1) -> None: ...
    def decode_error(self, account: str, n: int = 1) -> None: ...
    def stream_up(self, account: str, up: bool) -> None: ...
    def reconnect(self, account: str, n: int = 1) -> None: ...
    def alert_fired(self, rule: str) -> None: ...
    def delivered(self, channel: str, latency: float) -> None: ...
    def failed(self, channel: str) -> None: ...
    def set_pending(self, n: int) -> None: ...


class NullMetrics:
    """Metrics switched off: every call is a no-op."""

    def frame(self, account: str, n: int = 1) -> None:
        pass

    def decode_error(self, account: str, n: int = 1) -> None:
        pass

    def stream_up(self, account: str, up: bool) -> None:
        pass

    def reconnect(self, account: str, n: int = 1) -> None:
        pass

    def alert_fired(self, rule: str) -> None:
        pass

    def delivered(self, channel: str, latency: float) -> None:
        pass

    def failed(self, channel: str) -> None:
        pass

    def set_pending(self, n: int) -> None:
        pass


class Metrics:
    """alertd's metrics in their own registry. Methods are cheap and thread-safe."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self._info = Gauge("alertd_build_info", "alertd version", ["version"], registry=r)
        self._info.labels(__version__).set(1)
        self._up = Gauge(
            "alertd_stream_up",
            "1 while the account's websocket is connected",
            ["account"],
            registry=r,
        )
        self._reconnects = Counter(
            "alertd_stream_reconnects", "Reconnect attempts per account", ["account"], registry=r
        )
        self._frames = Counter(
            "alertd_frames", "Frames received per account", ["account"], registry=r
        )
        self._decode_errors = Counter(
            "alertd_decode_errors",
            "Frames that could not be decoded (logged and skipped)",
            ["account"],
            registry=r,
        )
        self._fired = Counter("alertd_alerts_fired", "Alerts fired per rule", ["rule"], registry=r)
        self._delivered = Counter(
            "alertd_notifications_delivered",
            "Notifications accepted by the service, per channel",
            ["channel"],
            registry=r,
        )
        self._failed = Counter(
            "alertd_notifications_failed",
            "Delivery attempts that failed, per channel",
            ["channel"],
            registry=r,
        )
        self._pending = Gauge(
            "alertd_outbox_pending", "Notifications waiting in the outbox", registry=r
        )
        self._latency = Histogram(
            "alertd_delivery_latency_seconds",
            "From entering the outbox to delivered, per channel",
            ["channel"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )

    # -- called by the stages --------------------------------------------------------------

    def frame(self, account: str, n: int = 1) -> None:
        self._frames.labels(account).inc(n)

    def decode_error(self, account: str, n: int = 1) -> None:
        self._decode_errors.labels(account).inc(n)

    def stream_up(self, account: str, up: bool) -> None:
        self._up.labels(account).set(1 if up else 0)

    def reconnect(self, account: str, n: int = 1) -> None:
        self._reconnects.labels(account).inc(n)

    def alert_fired(self, rule: str) -> None:
        self._fired.labels(rule).inc()

    def delivered(self, channel: str, latency: float) -> None:
        self._delivered.labels(channel).inc()
        self._latency.labels(channel).observe(max(0.0, latency))

    def failed(self, channel: str) -> None:
        self._failed.labels(channel).inc()

    def set_pending(self, n: int) -> None:
        self._pending.set(n)

    # -- called by the supervisor ----------------------------------------------------------

    def declare(
        self,
        *,
        accounts: Iterable[str] = (),
        rules: Iterable[str] = (),
        channels: Iterable[str] = (),
    ) -> None:
        """Create every series at zero, so a dashboard shows 0 rather than nothing, and
        ``rate()`` sees the first increment."""
        for account in accounts:
            self._up.labels(account)
            for counter in (self._reconnects, self._frames, self._decode_errors):
                counter.labels(account)
        for rule in rules:
            self._fired.labels(rule)
        for channel in channels:
            self._delivered.labels(channel)
            self._failed.labels(channel)
            self._latency.labels(channel)

    def forget_account(self, account: str) -> None:
        """Drop an account's series (after a reload removed it), so it does not read as down."""
        for metric in (self._up, self._reconnects, self._frames, self._decode_errors):
            with contextlib.suppress(KeyError):  # never labelled: nothing to drop
                metric.remove(account)

    async def serve(
        self,
        listen: str,
        *,
        task_status: trio.TaskStatus[tuple[str, int]] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Serve ``/metrics`` on ``listen`` ("host:port", "port" means 127.0.0.1) until
        cancelled; ``task_status.started`` gets the bound (host, port). Raises
        ``MetricsError`` when it cannot bind. On cancellation the server thread is stopped
        and its socket closed before returning."""
        try:
            host, port = parse_listen(listen)
        except ValueError as e:
            raise MetricsError(str(e)) from None
        try:
            # In a thread: binding may resolve a host name.
            server, thread = await trio.to_thread.run_sync(
                lambda: start_http_server(port, addr=host, registry=self.registry)
            )
        except OSError as exc:
            raise MetricsError(
                f"metrics: cannot listen on {listen!r}: {exc.strerror or exc} "
                "(change [daemon] metrics_listen, or remove it to turn metrics off)"
            ) from exc
        bound: Any = server.server_address
        address = (str(bound[0]), int(bound[1]))
        log.info("metrics.listen host=%s port=%d", *address)
        try:
            task_status.started(address)
            await trio.sleep_forever()
        finally:
            with trio.move_on_after(SHUTDOWN_TIMEOUT, shield=True):
                await trio.to_thread.run_sync(_stop, server, thread)


def _stop(server: Any, thread: threading.Thread) -> None:
    server.shutdown()
    server.server_close()
    thread.join(SHUTDOWN_TIMEOUT)
