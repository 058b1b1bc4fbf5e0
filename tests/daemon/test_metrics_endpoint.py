"""The metrics endpoint's paths (issue 16): ``/metrics`` only, parsed with Prometheus's own text
parser, without ``_created`` series; ``/healthz`` from the heartbeat's health; the counters
that follow the stages' statistics snapshots; scraped over real HTTP on 127.0.0.1."""

from __future__ import annotations

import time
import urllib.error
import urllib.request
from functools import partial
from pathlib import Path

import pytest
import trio
from prometheus_client.parser import text_string_to_metric_families

from alertd.check import parse_config
from alertd.daemon.app import Daemon
from alertd.daemon.metrics import Metrics
from alertd.dispatch.dispatcher import DispatchStatistics
from alertd.dispatch.grouping import GroupingStatistics
from alertd.simulator.server import serve
from alertd.sources.outputs import HealthStatistics

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return int(response.status), response.read().decode()
    except urllib.error.HTTPError as e:
        with e:
            return e.code, e.read().decode()


async def get(address: tuple[str, int], path: str) -> tuple[int, str]:
    return await trio.to_thread.run_sync(_get, f"http://{address[0]}:{address[1]}{path}")


async def scrape(address: tuple[str, int]) -> Samples:
    """Every sample of /metrics, read by prometheus_client's parser, keyed by (name, labels)."""
    status, text = await get(address, "/metrics")
    assert status == 200
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def dispatch_stats(silenced: int, inhibited: int) -> DispatchStatistics:
    return DispatchStatistics(
        alerts_received=silenced + inhibited,
        duplicates=0,
        grouping=GroupingStatistics(groups_waiting=0, alerts_waiting=0, groups_remembered=0),
        silenced=silenced,
        inhibited=inhibited,
        unrouted=0,
        rows_queued=0,
        rows_held_for_quiet_hours=0,
    )


def account_stats(frames: int, last_frame: float | None) -> HealthStatistics:
    return HealthStatistics(
        frames=frames,
        decode_errors=0,
        reconnects=0,
        connected=True,
        connected_since=0.0,
        last_frame=last_frame,
    )


async def test_healthz_answers_the_health_and_other_paths_are_not_found() -> None:
    """/healthz is 503 before any health check, then 200 or 503 with the health's reason; a
    path other than /metrics and /healthz is a 404, and /metrics has no _created series."""
    metrics = Metrics()
    metrics.alert_fired("filled")
    verdict = (True, "1/1 accounts connected, 0 notifications pending")
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            address = await nursery.start(metrics.serve, "127.0.0.1:0")
            assert await get(address, "/healthz") == (503, "not checked yet\n")
            metrics.watch_health(lambda: verdict)
            status, text = await get(address, "/healthz")
            assert (status, text) == (200, "ok: 1/1 accounts connected, 0 notifications pending\n")
            verdict = (False, "account main disconnected for 2m")
            assert await get(address, "/healthz") == (503, "account main disconnected for 2m\n")
            for path in ("/", "/metrics/", "/favicon.ico", "/healthz/x"):
                assert (await get(address, path))[0] == 404, path
            samples = await scrape(address)
            nursery.cancel_scope.cancel()
    assert samples[("alertd_alerts_fired_total", (("rule", "filled"),))] == 1
    assert not any(name.endswith("_created") for name, _ in samples)


async def test_observed_snapshots_become_counters_and_the_last_frame_time() -> None:
    """observe() of the stages' snapshots grows the counters by what the counts grew (silenced,
    inhibited, reload failures); a scrape shows each account's counters (frames) as its
    snapshot has them then, and its last-frame Unix time."""
    metrics = Metrics(wall=lambda: 1_000_000.0)
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            address = await nursery.start(metrics.serve, "127.0.0.1:0")
            now = trio.current_time()
            accounts: dict[str, HealthStatistics] = {}
            metrics.watch_accounts(lambda: accounts)
            for silenced, failures, frames in ((2, 0, 5), (3, 1, 9)):
                accounts.update(main=account_stats(frames, now - 2.0), quiet=account_stats(0, None))
                metrics.observe(
                    dispatch=dispatch_stats(silenced, 1),
                    pending=7,
                    reload_failures=failures,
                )
            samples = await scrape(address)
            nursery.cancel_scope.cancel()
    main = (("account", "main"),)
    assert samples[("alertd_alerts_silenced_total", ())] == 3
    assert samples[("alertd_alerts_inhibited_total", ())] == 1
    assert samples[("alertd_reload_failures_total", ())] == 1
    assert samples[("alertd_frames_total", main)] == 9
    assert samples[("alertd_outbox_pending", ())] == 7
    last = samples[("alertd_stream_last_frame_timestamp_seconds", main)]
    assert abs(last - (1_000_000.0 - 2.0)) < 0.5
    assert ("alertd_stream_last_frame_timestamp_seconds", (("account", "quiet"),)) not in samples


DAEMON = """
[daemon]
drain_timeout = "1s"
metrics_listen = "127.0.0.1:0"

[[accounts]]
name = "main"
exchange = "piexgo"
url = "ws://127.0.0.1:{port}/piexgo/ws"
streams = ["pinfo"]

[channels]
hook = "json://127.0.0.1:9/hook"
"""


@pytest.mark.slow  # the heartbeat's first health check is 5 s after the start
async def test_the_daemon_serves_last_frames_reload_failures_and_its_health(
    tmp_path: Path,
) -> None:
    """A running daemon (no [daemon.heartbeat]) answers /healthz 200 from its health checks,
    shows the account's last frame as a recent Unix time and counts a reload that failed."""
    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            sim = await nursery.start(partial(serve, port=0, seed=1))
            path = tmp_path / "alertd.toml"
            path.write_text(DAEMON.replace("{port}", str(sim.port)))
            config, problems = parse_config(path.read_text())
            assert config is not None, problems
            daemon = Daemon(
                config=config, state_dir=tmp_path, config_path=str(path), handle_signals=False
            )
            await nursery.start(daemon.run)
            assert daemon.metrics_address is not None
            address = daemon.metrics_address
            while (await get(address, "/healthz"))[0] != 200:  # noqa: ASYNC110 (HTTP)
                await trio.sleep(0.2)
            path.write_text("[daemon\n")
            assert not await daemon.reload()
            frame = ("alertd_stream_last_frame_timestamp_seconds", (("account", "main"),))
            while True:
                samples = await scrape(address)
                if samples.get(("alertd_reload_failures_total", ())) == 1 and frame in samples:
                    break
                await trio.sleep(0.2)
            assert abs(samples[frame] - time.time()) < 10
            assert (await get(address, "/healthz"))[1].startswith("ok: 1/1 account connected")
            daemon.request_stop()
            await daemon.stopped.wait()
            nursery.cancel_scope.cancel()
