"""Reload in the daemon: whatever fails while reading, checking or applying a new config, the
old one keeps running, one error line says why, and READY=1 follows with the reason."""

from __future__ import annotations

import logging
import os
import signal
from collections.abc import Sequence
from pathlib import Path

import attrs
import pytest
import trio

from alertd.check import load_config
from alertd.config.errors import ConfigError, Problem
from alertd.config.model import AccountSettings, Config
from alertd.daemon.app import Daemon
from alertd.daemon.reload import failure_reason
from alertd.daemon.sdnotify import SdNotifier
from alertd.events import Event
from alertd.notify.recording import RecordingNotifier
from alertd.sources.capture import Recorder
from alertd.sources.supervisor import SourcesStatistics

from .conftest import NotifyReceiver

CONFIG = """
[[accounts]]
name = "main"
exchange = "piexgo"
url = "ws://127.0.0.1:9/piexgo/ws"
streams = ["pinfo"]

[channels]
hook = "json://127.0.0.1:9/hook"

[dispatch]
default_channel = "hook"

[[rules]]
name = "filled"
on = "order.filled"
"""
MORE = '\n[[rules]]\nname = "cancelled"\non = "order.cancelled"\n'
ANOTHER_ACCOUNT = """
[[accounts]]
name = "alt"
exchange = "piexgo"
url = "ws://127.0.0.1:9/piexgo/ws"
streams = ["pinfo"]
"""


@attrs.define
class FailingIntake:
    """An intake that reads nothing and whose reload fails while ``fail`` is set."""

    fail: bool = True
    updates: list[list[str]] = attrs.field(factory=list)

    def statistics(self) -> SourcesStatistics:
        return SourcesStatistics(accounts={})

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        await trio.sleep_forever()

    async def update(self, accounts: Sequence[AccountSettings]) -> None:
        self.updates.append([a.name for a in accounts])
        if self.fail and len(accounts) > 1:
            raise RuntimeError("the intake fell over")


async def wait_for_ready(receiver: NotifyReceiver, seen: list[dict[str, str]]) -> dict[str, str]:
    """The next READY=1 datagram (every datagram read on the way is kept in ``seen``)."""
    while True:
        for message in receiver.messages():
            seen.append(message)
            if message.get("READY") == "1":
                return message
        await trio.sleep(0.01)


async def test_a_stage_that_fails_to_apply_the_new_config_leaves_the_old_one_running(
    tmp_path: Path, notify_socket: NotifyReceiver, caplog: pytest.LogCaptureFixture
) -> None:
    """SIGHUP whose apply fails in a stage: RELOADING=1, READY=1 with the reason, one error
    line, every stage back on the old config (the intake too); a later reload applies."""
    path = tmp_path / "alertd.toml"
    path.write_text(CONFIG)
    intake = FailingIntake()

    def factory(
        config: Config, send: trio.MemorySendChannel[Event], recorder: Recorder | None
    ) -> FailingIntake:
        return intake

    daemon = Daemon(
        config=load_config(path),
        state_dir=tmp_path / "state",
        config_path=str(path),
        notifier=RecordingNotifier(),
        intake=factory,
        sd=SdNotifier.from_env({"NOTIFY_SOCKET": notify_socket.env_value}),
    )
    seen: list[dict[str, str]] = []
    with trio.fail_after(20):
        async with trio.open_nursery() as nursery:
            await nursery.start(daemon.run)
            await wait_for_ready(notify_socket, seen)
            path.write_text(CONFIG + MORE + ANOTHER_ACCOUNT)
            caplog.clear()
            os.kill(os.getpid(), signal.SIGHUP)
            ready = await wait_for_ready(notify_socket, seen)
            assert any(m.get("RELOADING") == "1" for m in seen)
            assert ready["STATUS"].startswith(
                "reload failed, previous config kept: RuntimeError: the intake fell over"
            )
            errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
            assert [r.getMessage() for r in errors] == [
                "reload.failed (previous config kept): RuntimeError: the intake fell over"
            ]
            stats = daemon.statistics()
            assert [r.name for r in stats.engine.rules] == ["filled"]  # type: ignore[union-attr]
            assert (stats.reloads, stats.reload_failures) == (0, 1)
            assert [a.name for a in daemon.config.accounts] == ["main"]
            assert intake.updates == [["main", "alt"], ["main"]]  # tried, then put back

            intake.fail = False
            os.kill(os.getpid(), signal.SIGHUP)
            ready = await wait_for_ready(notify_socket, seen)
            assert "reload failed" not in ready["STATUS"]
            stats = daemon.statistics()
            assert [r.name for r in stats.engine.rules] == ["filled", "cancelled"]  # type: ignore[union-attr]
            assert (stats.reloads, stats.reload_failures, stats.problem) == (1, 1, None)
            daemon.request_stop()


def test_failure_reasons_are_one_line_naming_the_cause() -> None:
    """Config problems are joined on one line; any other error is its type and its words,
    prefixed with the file, on one line however long its message or traceback."""
    problems = [
        Problem(file="a.toml", path="rules[0].on", line=3, message="unknown kind"),
        Problem(file="a.toml", path="channels.x", line=9, message="not a URL"),
    ]
    assert failure_reason(ConfigError(problems)) == (
        "a.toml:3 rules[0].on: unknown kind; a.toml:9 channels.x: not a URL"
    )
    deep = RecursionError("TOML inline arrays/tables are nested\nmore than 400 levels")
    assert failure_reason(deep, "a.toml") == (
        "a.toml: RecursionError: TOML inline arrays/tables are nested more than 400 levels"
    )
    assert failure_reason(KeyError()) == "KeyError: no details"
