"""The daemon in-process: every stage wired, against the simulator, with real metrics."""

import time
import urllib.request
from functools import partial
from pathlib import Path

import attrs
import pytest
import trio

from alertd.check import parse_config
from alertd.commands.run import resolve_state_dir
from alertd.config.model import Config, Duration, Secret
from alertd.config.secrets import SecretEnvironment
from alertd.daemon.app import Daemon, StartupError
from alertd.daemon.logs import iter_secrets
from alertd.dispatch.silences import add_silence
from alertd.notify.notifier import SendResult
from alertd.notify.recording import RecordingNotifier
from alertd.simulator.server import serve
from alertd.store import database as store

FILLS_EARLY = 33  # a simulator seed whose Piexgo account fills an order in its first steps

CONFIG = """
[daemon]
metrics_listen = "127.0.0.1:0"
drain_timeout = "5s"

[[accounts]]
name = "main"
exchange = "piexgo"
url = "ws://127.0.0.1:{port}/piexgo/ws"
streams = ["pinfo", "dealinfo.btc_usdt"]

[channels]
hook = "json://127.0.0.1:9/{env:HOOK_TOKEN}"

[dispatch]
default_channel = "hook"

[[rules]]
name = "filled"
on = "order.filled"
message = "{{ side }} {{ amount }} {{ symbol }}"
"""


def config_for(port: int) -> Config:
    secrets = SecretEnvironment(environ={"HOOK_TOKEN": "s3cr3t-token"}, credentials_dir=None)
    config, problems = parse_config(CONFIG.replace("{port}", str(port)), secrets=secrets)
    assert config is not None, problems
    return config


def scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        text: str = response.read().decode()
    return text


def metric(text: str, name: str, **labels: str) -> float:
    wanted = ",".join(f'{k}="{v}"' for k, v in labels.items())
    prefix = f"{name}{{{wanted}}} " if labels else f"{name} "
    for line in text.splitlines():
        if line.startswith(prefix):
            return float(line.split()[-1])
    raise AssertionError(f"{prefix!r} not in metrics")


async def test_alerts_flow_to_the_notifier_and_metrics_count_them(tmp_path: Path) -> None:
    """A fill on the exchange reaches the notifier, and /metrics shows the frames, the alert
    fired, the delivery and the stream being up."""
    notifier = RecordingNotifier()
    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            sim = await nursery.start(partial(serve, port=0, seed=FILLS_EARLY, rate=20))
            daemon = Daemon(
                config=config_for(sim.port),
                state_dir=tmp_path,
                notifier=notifier,
                handle_signals=False,
            )
            await nursery.start(daemon.run)
            while not notifier.sent:  # noqa: ASYNC110 (the fake notifier has no event to wait on)
                await trio.sleep(0.05)
            assert daemon.metrics_address is not None
            port = daemon.metrics_address[1]
            await trio.sleep(1.5)  # one observe interval copies the sources' counters
            text = await trio.to_thread.run_sync(scrape, port)
            assert metric(text, "alertd_frames_total", account="main") > 0
            assert metric(text, "alertd_stream_up", account="main") == 1
            assert metric(text, "alertd_alerts_fired_total", rule="filled") >= 1
            assert metric(text, "alertd_notifications_delivered_total", channel="hook") >= 1
            assert "s3cr3t-token" not in text
            daemon.request_stop()
            await daemon.stopped.wait()
            nursery.cancel_scope.cancel()  # the simulator
    message = notifier.sent[0]
    assert message.title.startswith("[main] order.filled")
    assert "_USDT" in message.body


async def test_stop_with_nothing_pending_returns_promptly(tmp_path: Path) -> None:
    """request_stop() ends run() quickly when the outbox is empty, even with no exchange."""
    config = config_for(9)  # nothing listens on port 9: the account keeps reconnecting
    daemon = Daemon(
        config=config, state_dir=tmp_path, notifier=RecordingNotifier(), handle_signals=False
    )
    with trio.fail_after(15):
        async with trio.open_nursery() as nursery:
            await nursery.start(daemon.run)
            daemon.request_stop()
    assert daemon.statistics().stopped_pending == 0


def test_iter_secrets_finds_every_secret_in_a_config() -> None:
    """Every resolved secret in the config is found, so logging can mask it."""
    config = config_for(1)
    found = [s.reveal() for s in iter_secrets(config)]
    assert "json://127.0.0.1:9/s3cr3t-token" in found
    assert all(isinstance(s, Secret) for s in iter_secrets(config))


def test_state_dir_prefers_the_flag_then_systemd(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """--state-dir wins over $STATE_DIRECTORY, which wins over [daemon] state_dir."""
    config = config_for(1)
    monkeypatch.setenv("STATE_DIRECTORY", "/var/lib/alertd:/var/lib/other")
    assert resolve_state_dir(str(tmp_path), config) == tmp_path
    assert resolve_state_dir(None, config) == Path("/var/lib/alertd")
    monkeypatch.delenv("STATE_DIRECTORY")
    assert resolve_state_dir(None, config) == Path(config.daemon.state_dir)


async def test_unwritable_state_dir_is_a_clear_startup_error(tmp_path: Path) -> None:
    """A state directory that cannot hold the database stops start-up with a message naming
    the directory and what to set."""
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    daemon = Daemon(
        config=config_for(9),
        state_dir=blocker / "state",
        notifier=RecordingNotifier(),
        handle_signals=False,
    )
    with pytest.raises(StartupError) as exc:
        await daemon.run()
    assert str(blocker / "state") in str(exc.value)
    assert "state_dir" in str(exc.value)


async def test_a_silence_added_while_an_alert_retries_stops_its_delivery(tmp_path: Path) -> None:
    """An alert whose channel is failing is not delivered once the operator silences its rule
    (as `alertd silence add` does, in another connection to the state database)."""
    failing = True

    def answer(url: str, title: str, body: str) -> SendResult:
        return SendResult(ok=not failing, recoverable=True, detail="HTTP 503")

    notifier = RecordingNotifier(answer=answer)
    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            sim = await nursery.start(partial(serve, port=0, seed=FILLS_EARLY, rate=20))
            config = attrs.evolve(
                config_for(sim.port),
                dispatch=attrs.evolve(
                    config_for(sim.port).dispatch,
                    retry_initial=Duration(0.2),
                    retry_max=Duration(0.2),
                ),
            )
            daemon = Daemon(
                config=config, state_dir=tmp_path, notifier=notifier, handle_signals=False
            )
            await nursery.start(daemon.run)
            while not notifier.attempts:  # noqa: ASYNC110 (the fake has no event to wait on)
                await trio.sleep(0.05)
            conn = store.connect(store.db_path(tmp_path))
            now = time.time()
            add_silence(conn, rule="filled", matchers={}, starts=now, ends=now + 3600)
            conn.close()
            await trio.sleep(2.0)  # delivery sees the silence within about a second
            failing = False
            await trio.sleep(2.0)  # several retry intervals
            daemon.request_stop()
            await daemon.stopped.wait()
            nursery.cancel_scope.cancel()  # the simulator
    assert notifier.sent == []
