"""Prometheus metrics: what the stages count, and the optional endpoint that exposes them.

The stages call plain methods (``frame(account)``, ``delivered(channel, latency)``...) on a
``Metrics`` or, when ``[daemon] metrics_listen`` is unset, on a ``NullMetrics`` that does
nothing (``MetricsSink`` is either). ``Metrics`` keeps its own ``CollectorRegistry``, so two
daemons in one test process never share counters, and exposes no process/GC collectors of
another registry by accident.

Once a second the daemon hands ``observe`` the stages' small ``statistics()`` snapshots
(dispatch, outbox, the daemon's reloads), and the counters follow them. The accounts' series
(frames, decode errors, reconnects, up, last frame) are built at scrape time instead, from the
accounts' snapshots (``watch_accounts``): with 5,000 accounts a loop copying every account's
counters each second was 13 % of an idle daemon's CPU, and 25,000 labelled children held by
prometheus-client cost memory for nothing between scrapes. Nothing here reads a stage's
private state.

The endpoint is a threaded WSGI server (wsgiref, as prometheus-client's own) rather than an HTTP
server on trio: a scrape is then answered even while the event loop is stuck, which is exactly
when an operator wants to look; and prometheus-client's metric updates are lock-protected, so
stages on the trio thread and scrapes on the server thread do not race. The accounts'
snapshots are taken on the trio thread (a scrape asks it and waits at most
``SNAPSHOT_TIMEOUT``); while the loop is stuck a scrape shows the last snapshot taken. It
answers two paths:
``/metrics`` (the exposition, without ``_created`` series) and ``/healthz`` (200 or 503 with
the reason, from the health the heartbeat checks: ``watch_health``); any other path is a 404.
"""

from __future__ import annotations

import logging
import socket
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any, TypedDict, Unpack
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import trio
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    make_wsgi_app,
)
from prometheus_client.exposition import ThreadingWSGIServer

from alertd import __version__, clock
from alertd.config.model import Config
from alertd.config.values import parse_listen
from alertd.daemon.metrics_accounts import AccountsCollector, AccountsSource

if TYPE_CHECKING:
    from wsgiref.types import StartResponse, WSGIEnvironment

    from alertd.dispatch.dispatcher import DispatchStatistics

log = logging.getLogger(__name__)

# Delivery latency is from an alert entering the outbox to the service accepting it, retries
# and quiet hours included, so the buckets run from sub-second to hours.
LATENCY_BUCKETS = (0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600, 14400)
# How long stopping the endpoint may take: serve_forever polls for shutdown every 0.5 s.
SHUTDOWN_TIMEOUT = 5.0


# A health for /healthz: (healthy, reason), read on the server's thread, so it must not touch
# trio (the heartbeat's ``healthz`` reads its last verdict and how old it is).
HealthSource = Callable[[], tuple[bool, str]]

disable_created_metrics()  # type: ignore[no-untyped-call]  # process-wide in prometheus-client: no *_created series anywhere


class MetricsError(Exception):
    """The metrics endpoint cannot be set up as configured."""


class Snapshots(TypedDict):
    """What ``observe`` is handed once a second: the stages' statistics and counts."""

    dispatch: DispatchStatistics | None
    pending: int
    reload_failures: int


class NullMetrics:
    """Metrics switched off: every call is a no-op. Its methods are also the interface the
    stages call (``MetricsSink``), which ``Metrics`` implements by overriding each one."""

    def alert_fired(self, rule: str) -> None:
        pass

    def delivered(self, channel: str, latency: float) -> None:
        pass

    def failed(self, channel: str) -> None:
        pass

    def set_pending(self, n: int) -> None:
        pass

    def observe(self, **snapshots: Unpack[Snapshots]) -> None:
        pass

    def watch_health(self, health: HealthSource) -> None:
        pass

    def watch_accounts(self, accounts: AccountsSource) -> None:
        pass


# What the stages are given: a ``Metrics`` or, with metrics off, a ``NullMetrics``.
MetricsSink = NullMetrics


class Metrics(NullMetrics):
    """alertd's metrics in their own registry. Methods are cheap and thread-safe."""

    def __init__(self, *, wall: clock.Wall = clock.wall) -> None:
        self._wall = wall
        self._health: HealthSource | None = None
        self._seen: dict[str, int] = {}  # what ``observe`` last read of each snapshot count
        self.registry = CollectorRegistry(auto_describe=True)
        self._exposition = make_wsgi_app(self.registry)
        r = self.registry

        def counter(name: str, doc: str, *labels: str) -> Counter:
            return Counter(name, doc, labels, registry=r)

        def gauge(name: str, doc: str, *labels: str) -> Gauge:
            return Gauge(name, doc, labels, registry=r)

        self._info = gauge("alertd_build_info", "alertd version", "version")
        self._info.labels(__version__).set(1)
        self._accounts = AccountsCollector(wall=wall)
        r.register(self._accounts)
        self._fired = counter("alertd_alerts_fired", "Alerts fired per rule", "rule")
        self._delivered = counter(
            "alertd_notifications_delivered",
            "Notifications accepted by the service, per channel",
            "channel",
        )
        self._failed = counter(
            "alertd_notifications_failed", "Delivery attempts that failed, per channel", "channel"
        )
        self._pending = gauge("alertd_outbox_pending", "Notifications waiting in the outbox")
        self._silenced = counter(
            "alertd_alerts_silenced", "Alerts a silence kept from every channel"
        )
        self._inhibited = counter(
            "alertd_alerts_inhibited", "Alerts an inhibition kept from every channel"
        )
        self._reload_failures = counter(
            "alertd_reload_failures", "Reloads that kept the previous config"
        )
        # On a shared database (store/spool.py): 1 while it is away, the alerts its spool holds.
        self._away = gauge("alertd_database_away", "1 while the shared database is away")
        self._spool = gauge("alertd_spool_alerts", "Alerts the spool holds for the database")
        self._spooled = counter("alertd_alerts_spooled", "Alerts written to the spool")
        self._drained = counter("alertd_alerts_drained", "Alerts moved from the spool")
        self._latency = Histogram(
            "alertd_delivery_latency_seconds",
            "From entering the outbox to delivered, per channel",
            ["channel"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )

    # -- called by the stages --------------------------------------------------------------

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

    def observe(self, **snapshots: Unpack[Snapshots]) -> None:
        """Follow the stages' snapshots: counters grow by what their counts grew since the
        last call (``silenced`` of dispatch...), gauges are set."""
        dispatch = snapshots["dispatch"]
        self.set_pending(snapshots["pending"])
        if dispatch is not None:
            self._silenced.inc(self._grown("silenced", dispatch.silenced))
            self._inhibited.inc(self._grown("inhibited", dispatch.inhibited))
        outage = None if dispatch is None else dispatch.outage
        if outage is not None:
            self._away.set(0 if outage.away_since is None else 1)
            self._spool.set(outage.spool.alerts)
            self._spooled.inc(self._grown("spooled", outage.spool.spooled))
            self._drained.inc(self._grown("drained", outage.spool.drained))
        self._reload_failures.inc(self._grown("reload_failures", snapshots["reload_failures"]))

    def _grown(self, name: str, count: int) -> int:
        """How much ``count`` grew since the last call for ``name``."""
        last, self._seen[name] = self._seen.get(name, 0), count
        return max(0, count - last)

    def watch_health(self, health: HealthSource) -> None:
        """Answer ``/healthz`` from ``health`` (until then: 503, not checked yet)."""
        self._health = health

    def watch_accounts(self, accounts: AccountsSource) -> None:
        """Build the accounts' series from ``accounts()`` at each scrape (call this on the
        trio thread: the scrape asks that thread for the snapshots)."""
        self._accounts.watch(accounts)

    def declare_config(self, config: Config) -> None:
        """``declare`` the enabled accounts, the rules and the channels of ``config``."""
        self.declare(
            accounts=[a.name for a in config.accounts if a.enabled],
            rules=[r.name for r in config.rules],
            channels=list(config.channels),
        )

    def declare(
        self,
        *,
        accounts: Iterable[str] = (),
        rules: Iterable[str] = (),
        channels: Iterable[str] = (),
    ) -> None:
        """Create every series at zero, so a dashboard shows 0 rather than nothing, and
        ``rate()`` sees the first increment."""
        self._accounts.declared.update(dict.fromkeys(accounts))
        for rule in rules:
            self._fired.labels(rule)
        for channel in channels:
            self._delivered.labels(channel)
            self._failed.labels(channel)
            self._latency.labels(channel)

    def forget_account(self, account: str) -> None:
        """Drop an account's series (after a reload removed it), so it does not read as down
        (its series come back only once it is started again)."""
        self._accounts.declared.pop(account, None)

    async def serve(
        self,
        listen: str,
        *,
        task_status: trio.TaskStatus[tuple[str, int]] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Serve ``/metrics`` and ``/healthz`` on ``listen`` ("host:port", "port" means
        127.0.0.1) until cancelled; ``task_status.started`` gets the bound (host, port). Raises
        ``MetricsError`` when it cannot bind. On cancellation the server thread is stopped
        and its socket closed before returning."""
        try:
            host, port = parse_listen(listen)
        except ValueError as e:
            raise MetricsError(str(e)) from None
        try:
            # In a thread: binding may resolve a host name.
            server, thread = await trio.to_thread.run_sync(self._start, host, port)
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

    def _start(self, host: str, port: int) -> tuple[WSGIServer, threading.Thread]:
        info = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
        family, sockaddr = info[0][0], info[0][4]

        class Server(ThreadingWSGIServer):
            address_family = family  # an IPv6 host too

        server = make_server(str(sockaddr[0]), port, self._app, Server, handler_class=_QuietHandler)
        thread = threading.Thread(target=server.serve_forever, name="alertd-metrics", daemon=True)
        thread.start()
        return server, thread

    def _app(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        """The endpoint's paths (on the server's thread)."""
        path = environ.get("PATH_INFO", "")
        if path == "/metrics":
            exposition: Iterable[bytes] = self._exposition(environ, start_response)
            return exposition
        if path == "/healthz":
            healthy, reason = self._health() if self._health else (False, "not checked yet")
            status = "200 OK" if healthy else "503 Service Unavailable"
            return _text(start_response, status, ("ok: " if healthy else "") + reason)
        return _text(
            start_response, "404 Not Found", "not found: alertd serves /metrics and /healthz"
        )


def _text(start_response: StartResponse, status: str, text: str) -> Iterator[bytes]:
    body = (text + "\n").encode("utf-8")
    start_response(
        status, [("Content-Type", "text/plain; charset=utf-8"), ("Content-Length", str(len(body)))]
    )
    yield body


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass  # a scrape every few seconds is no news


def _stop(server: Any, thread: threading.Thread) -> None:
    server.shutdown()
    server.server_close()
    thread.join(SHUTDOWN_TIMEOUT)
