"""The heartbeat's pipeline probe (issue 12): a probe goes from the engine's input through
dispatch to delivery's workers, so a wedged stage is unhealthy (naming the stage) and stops
the pings, and the pings come back once it moves again."""

from __future__ import annotations

from datetime import UTC, datetime
from functools import partial
from pathlib import Path

import pytest
import trio

from alertd.check import parse_config
from alertd.daemon.app import Daemon
from alertd.daemon.health import PipelineCheck, ProbeStatistics, Verdict
from alertd.dispatch.dispatcher import Dispatcher
from alertd.dispatch.muting import Muter
from alertd.dispatch.silences import Silences
from alertd.engine import Engine, run_engine
from alertd.events import Alert, Event, StreamConnected
from alertd.notify.delivery import Delivery
from alertd.notify.recording import RecordingNotifier
from alertd.simulator.server import serve
from alertd.store.database import Database, db_path
from alertd.store.handoff import Handoff
from alertd.store.outbox import Outbox

from .test_heartbeat import service, wait_for

RULES = """
[channels]
hook = "json://127.0.0.1:9/hook"

[[rules]]
name = "up"
on = "stream.connected"
notify = ["hook"]
"""


def connected(account: str = "main") -> StreamConnected:
    now = datetime.now(UTC)
    return StreamConnected(exchange="piexgo", account=account, time=now, received=now, stream="*")


async def test_a_blocked_engine_holds_the_probe_and_it_comes_back_through_dispatch(
    tmp_path: Path,
) -> None:
    """An engine that cannot hand its alert on (dispatch not taking) is unhealthy once the
    probe has been out longer than the timeout, naming the engine; once dispatch runs, the
    probe passes the engine and dispatch (no row for it in the outbox) and all is healthy."""
    config, problems = parse_config(RULES)
    assert config is not None, problems
    db = Database(db_path(tmp_path))
    try:
        outbox = Outbox(db, handoff=Handoff())
        delivery = Delivery(config, outbox, RecordingNotifier())
        dispatcher = Dispatcher(config, outbox, Muter(config, Silences(db)))
        events_send, events_recv = trio.open_memory_channel[Event](16)
        alerts_send, alerts_recv = trio.open_memory_channel[Alert](0)
        check = PipelineCheck(events_send, delivery.probes, timeout=1.0)
        with trio.fail_after(20):
            async with trio.open_nursery() as nursery:
                engine = Engine.from_config(config)
                await nursery.start(run_engine, engine, events_recv, alerts_send)
                events_send.send_nowait(connected())  # an alert nobody takes: the engine waits
                await trio.sleep(0.1)
                assert await check() == Verdict(True, "")  # out, not yet too long
                await trio.sleep(0.6)
                verdict = await check()
                assert not verdict.healthy
                assert verdict.reason.startswith("pipeline stuck: a probe sent 1.")
                assert "behind the engine" in verdict.reason
                assert check.statistics() == ProbeStatistics(sent=1, stage="engine")
                await nursery.start(dispatcher.run, alerts_recv)
                with trio.fail_after(5):
                    while check.statistics().stage != "back":  # noqa: ASYNC110 (no event)
                        await trio.sleep(0.05)
                assert check.statistics() == ProbeStatistics(sent=1, stage="back")
                assert await check() == Verdict(True, "")  # and the next one is back too
                assert check.statistics() == ProbeStatistics(sent=2, stage="back")
                stats = dispatcher.statistics()
                assert stats.alerts_received == 1 and stats.rows_queued == 1  # the alert only
                assert (await outbox.statistics()).pending == 1
                assert engine.statistics().events_in == 1  # probes count as no event
                nursery.cancel_scope.cancel()
    finally:
        db.close()


async def test_dispatch_not_taking_holds_the_probe_behind_dispatch(tmp_path: Path) -> None:
    """With the engine free but dispatch taking nothing, the probe passes the engine and the
    verdict, once it is out too long, names dispatch."""
    config, problems = parse_config(RULES)
    assert config is not None, problems
    db = Database(db_path(tmp_path))
    try:
        delivery = Delivery(config, Outbox(db), RecordingNotifier())
        events_send, events_recv = trio.open_memory_channel[Event](16)
        alerts_send, _alerts_recv = trio.open_memory_channel[Alert](0)
        check = PipelineCheck(events_send, delivery.probes, timeout=0.8)
        with trio.fail_after(10):
            async with trio.open_nursery() as nursery:
                engine = Engine.from_config(config)
                await nursery.start(run_engine, engine, events_recv, alerts_send)
                assert await check() == Verdict(True, "")  # out, not yet too long
                await trio.sleep(0.4)
                verdict = await check()
                assert not verdict.healthy and "is behind dispatch" in verdict.reason
                assert check.statistics() == ProbeStatistics(sent=1, stage="dispatch")
                nursery.cancel_scope.cancel()
    finally:
        db.close()


DAEMON = """
[daemon]
drain_timeout = "1s"

[daemon.heartbeat]
url = "{env:HEARTBEAT_URL}"
interval = "1s"
timeout = "2s"
channel_failing_after = "60s"
pipeline_timeout = "1s"

[[accounts]]
name = "main"
exchange = "piexgo"
url = "ws://127.0.0.1:{port}/piexgo/ws"
streams = ["pinfo"]

[channels.hook]
urls = ["json://127.0.0.1:{hook}/hook"]
timeout = "60s"

[[rules]]
name = "up"
on = "stream.connected"
notify = ["hook"]
"""


async def test_a_send_that_never_returns_stops_the_pings_until_it_does(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """While the webhook holds a send without answering, the daemon's heartbeat says /fail
    naming the stuck worker's channel; when the webhook answers, the pings come back."""
    with service() as ping, service() as hook, trio.fail_after(30):
        hook.hang = True
        monkeypatch.setenv("HEARTBEAT_URL", ping.healthchecks_url())
        async with trio.open_nursery() as nursery:
            sim = await nursery.start(partial(serve, port=0, seed=1))
            text = DAEMON.replace("{port}", str(sim.port)).replace("{hook}", str(hook.port))
            config, problems = parse_config(text)
            assert config is not None, problems
            daemon = Daemon(config=config, state_dir=tmp_path, handle_signals=False)
            await nursery.start(daemon.run)
            await wait_for("a fail", lambda: "fail" in ping.signals())
            fail = next(r for r in ping.snapshot() if r.signal == "fail")
            assert fail.body.startswith("pipeline stuck: a probe sent ")
            assert "behind delivery's worker for hook URL #0" in fail.body
            assert len(hook.snapshot()) == 1  # the one send, still held
            hook.hang = False
            hook.release.set()
            await wait_for("recovery", lambda: ping.signals()[-1] == "ok")
            assert daemon.statistics().engine is not None
            daemon.request_stop()
            await daemon.stopped.wait()
            nursery.cancel_scope.cancel()
    assert ping.signals()[:2] == ["start", "ok"]  # healthy before the alert was sent
