"""Prometheus metrics, scraped from the real endpoint on 127.0.0.1 with urllib."""

from __future__ import annotations

import socket
import time
import urllib.error
import urllib.request
from functools import partial

import pytest
import trio
from prometheus_client.parser import text_string_to_metric_families

from alertd.config.values import parse_listen
from alertd.daemon.metrics import Metrics, MetricsError, MetricsSink, NullMetrics
from alertd.sources.outputs import HealthStatistics


def health(
    *, frames: int = 0, errors: int = 0, reconnects: int = 0, up: bool = False
) -> HealthStatistics:
    return HealthStatistics(
        frames=frames,
        decode_errors=errors,
        reconnects=reconnects,
        connected=up,
        connected_since=None,
        last_frame=None,
    )


def _get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as response:
        body: bytes = response.read()
    return body.decode()


async def scrape(address: tuple[str, int]) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of the endpoint, keyed by (name, sorted labels)."""
    text = await trio.to_thread.run_sync(_get, f"http://{address[0]}:{address[1]}/metrics")
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


async def test_what_the_stages_count_is_scraped_from_the_endpoint() -> None:
    """Each method, and each account's snapshot, shows up as the matching sample, labelled
    by account, rule or channel."""
    metrics = Metrics()
    accounts = {"main": health(frames=3, errors=1, up=True), "spare": health(reconnects=1)}
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            address = await nursery.start(metrics.serve, "127.0.0.1:0")
            metrics.watch_accounts(lambda: accounts)
            metrics.alert_fired("filled")
            metrics.delivered("me", 1.5)
            metrics.failed("me")
            metrics.set_pending(4)
            samples = await scrape(address)
            nursery.cancel_scope.cancel()
    acc = (("account", "main"),)
    assert samples[("alertd_frames_total", acc)] == 3
    assert samples[("alertd_decode_errors_total", acc)] == 1
    assert samples[("alertd_stream_up", acc)] == 1
    assert samples[("alertd_stream_up", (("account", "spare"),))] == 0
    assert samples[("alertd_stream_reconnects_total", (("account", "spare"),))] == 1
    assert samples[("alertd_alerts_fired_total", (("rule", "filled"),))] == 1
    assert samples[("alertd_notifications_delivered_total", (("channel", "me"),))] == 1
    assert samples[("alertd_notifications_failed_total", (("channel", "me"),))] == 1
    assert samples[("alertd_outbox_pending", ())] == 4
    me = ("channel", "me")
    assert samples[("alertd_delivery_latency_seconds_sum", (me,))] == 1.5
    assert samples[("alertd_delivery_latency_seconds_bucket", (me, ("le", "1.0")))] == 0
    assert samples[("alertd_delivery_latency_seconds_bucket", (me, ("le", "2.5")))] == 1


async def test_endpoint_binds_loopback_when_no_host_is_given() -> None:
    """``metrics_listen = "0"`` (port only) listens on 127.0.0.1, never on all interfaces."""
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            host, port = await nursery.start(Metrics().serve, "0")
            assert host == "127.0.0.1"
            assert port > 0
            nursery.cancel_scope.cancel()


async def test_each_metrics_has_its_own_registry() -> None:
    """Two daemons in one process do not share counters, and no global collectors leak in."""
    first, second = Metrics(), Metrics()
    first.watch_accounts(lambda: {"main": health(frames=1)})
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            address = await nursery.start(second.serve, "127.0.0.1:0")
            samples = await scrape(address)
            nursery.cancel_scope.cancel()
    assert ("alertd_frames_total", (("account", "main"),)) not in samples
    assert not any(name.startswith(("process_", "python_")) for name, _ in samples)


async def test_endpoint_stops_when_cancelled() -> None:
    """After the task is cancelled the port no longer answers."""
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            address = await nursery.start(Metrics().serve, "127.0.0.1:0")
            await scrape(address)
            nursery.cancel_scope.cancel()
        with pytest.raises(urllib.error.URLError):
            await scrape(address)


async def test_a_busy_port_is_an_error_that_names_the_setting() -> None:
    """Binding a port in use raises MetricsError pointing at [daemon] metrics_listen."""
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        expected = pytest.RaisesGroup(pytest.RaisesExc(MetricsError, match=r"metrics_listen"))
        with trio.fail_after(10), expected:
            async with trio.open_nursery() as nursery:
                await nursery.start(partial(Metrics().serve, f"127.0.0.1:{port}"))


async def test_declared_series_read_zero_and_forgotten_accounts_vanish() -> None:
    """Declared accounts and channels show 0 before anything happens; a removed account's
    series disappear instead of reading as down forever."""
    metrics = Metrics()
    metrics.declare(accounts=["main", "old"], rules=["filled"], channels=["me"])
    metrics.forget_account("old")
    metrics.forget_account("never-seen")
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            address = await nursery.start(metrics.serve, "127.0.0.1:0")
            samples = await scrape(address)
            nursery.cancel_scope.cancel()
    assert samples[("alertd_frames_total", (("account", "main"),))] == 0
    assert samples[("alertd_stream_up", (("account", "main"),))] == 0
    assert samples[("alertd_alerts_fired_total", (("rule", "filled"),))] == 0
    assert samples[("alertd_notifications_failed_total", (("channel", "me"),))] == 0
    assert not any(("account", "old") in labels for _, labels in samples)


@pytest.mark.parametrize(
    ("listen", "expected"),
    [
        ("127.0.0.1:9108", ("127.0.0.1", 9108)),
        ("9108", ("127.0.0.1", 9108)),
        (":9108", ("127.0.0.1", 9108)),
        ("[::1]:9108", ("::1", 9108)),
        ("localhost:9108", ("localhost", 9108)),
    ],
)
def test_listen_addresses_parse(listen: str, expected: tuple[str, int]) -> None:
    """The forms of metrics_listen people write give the right host and port."""
    assert parse_listen(listen) == expected


@pytest.mark.parametrize("listen", ["", "127.0.0.1", "host:port", "127.0.0.1:70000", "::1:80"])
def test_bad_listen_addresses_are_rejected(listen: str) -> None:
    """Anything that is not host:port is an error that shows the value and an example."""
    with pytest.raises(ValueError, match=r"127\.0\.0\.1:9108"):
        parse_listen(listen)


def test_null_metrics_offers_every_method_the_stages_call() -> None:
    """With metrics off, stages can call the same methods and nothing happens."""
    sinks: list[MetricsSink] = [NullMetrics(), Metrics()]
    for sink in sinks:
        sink.watch_accounts(lambda: {"a": health()})
        sink.alert_fired("r")
        sink.delivered("c", 0.1)
        sink.failed("c")
        sink.set_pending(0)
    protocol_methods = {n for n in vars(MetricsSink) if not n.startswith("_")}
    assert protocol_methods <= set(vars(NullMetrics))
    assert protocol_methods <= set(vars(Metrics))


async def test_a_scrape_while_the_event_loop_is_stuck_shows_the_last_snapshot() -> None:
    """The accounts' series are taken from their snapshots at scrape time; while the event
    loop is stuck a scrape still answers (within the snapshot timeout) with the last ones."""
    metrics = Metrics()
    accounts = {"main": health(frames=1, up=True)}
    with trio.fail_after(20):
        async with trio.open_nursery() as nursery:
            host, port = await nursery.start(metrics.serve, "127.0.0.1:0")
            metrics.watch_accounts(lambda: accounts)
            before = await scrape((host, port))
            accounts["main"] = health(frames=5, up=True)
            started = time.monotonic()
            stuck = _get(f"http://{host}:{port}/metrics")  # blocks the loop
            waited = time.monotonic() - started
            after = await scrape((host, port))
            nursery.cancel_scope.cancel()
    frames = ("alertd_frames_total", (("account", "main"),))
    assert before[frames] == 1
    assert 'alertd_frames_total{account="main"} 1.0' in stuck
    assert waited < 4.5
    assert after[frames] == 5
