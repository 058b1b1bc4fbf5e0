"""What the daemon logs of an alert: one line per stage (engine, dispatch, delivery), each
naming the rule and the account; a failed delivery once, by alertd, with the cause; a reload
names the rules whose state it reset and why."""

from __future__ import annotations

import io
import logging
import socket
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import attrs
import pytest
import trio
from aiosmtpd.controller import Controller

from alertd.check import load_config
from alertd.config.model import AccountSettings, Config
from alertd.daemon.app import Daemon
from alertd.daemon.logs import configure_logging
from alertd.daemon.sdnotify import SdNotifier
from alertd.engine import Engine, compile_rules
from alertd.events import Event
from alertd.sources.capture import Recorder
from alertd.sources.supervisor import SourcesStatistics
from engine.factories import filled, rule
from notify.receivers import http_receiver

ACCOUNTS = """
[[accounts]]
name = "px"
exchange = "piexgo"
url = "ws://127.0.0.1:9/piexgo/ws"
streams = ["pinfo"]

[[accounts]]
name = "cr"
exchange = "cryptology"
url = "ws://127.0.0.1:9/cryptology/ws"
streams = ["account"]
"""
RULES = """
[dispatch]
default_channel = "out"
retry_initial = "30s"

[[rules]]
name = "filled"
on = "order.filled"
key = "{{ account }}/{{ order_id }}"
"""


@attrs.define
class FeedingIntake:
    """An intake that sends ``events`` once started, then reads nothing more."""

    send: trio.MemorySendChannel[Event]
    events: Sequence[Event]

    def statistics(self) -> SourcesStatistics:
        return SourcesStatistics(accounts={})

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        for event in self.events:
            await self.send.send(event)
        await trio.sleep_forever()

    async def update(self, accounts: Sequence[AccountSettings]) -> None:
        pass


def fills_now() -> list[Event]:
    now = datetime.now(UTC)
    return [
        attrs.evolve(filled("11", account="px"), time=now, received=now),
        attrs.evolve(filled("22", account="cr"), time=now, received=now),
    ]


@attrs.frozen
class Line:
    level: str
    logger: str
    message: str


@pytest.fixture
def stderr() -> Iterator[io.StringIO]:
    """What alertd's own log handler (as ``alertd run`` configures it) writes, in a buffer."""
    root = logging.getLogger()
    level = root.level
    buffer = io.StringIO()
    configure_logging("info", stream=buffer)
    yield buffer
    for handler in [h for h in root.handlers if h.get_name() == "alertd"]:
        root.removeHandler(handler)
    root.setLevel(level)


def lines_of(stderr: io.StringIO) -> list[Line]:
    """Each line alertd's handler wrote: ``date time LEVEL logger: message``."""
    found = []
    for text in stderr.getvalue().splitlines():
        _, _, level, logger, message = text.split(maxsplit=4)
        found.append(Line(level, logger.rstrip(":"), message))
    return found


async def run_until(
    tmp_path: Path, channel: str, stderr: io.StringIO, *, lines: str, count: int
) -> list[Line]:
    """Run the daemon on the two fills until ``count`` log lines start with ``lines``; every
    line alertd's handler wrote by then."""
    path = tmp_path / "alertd.toml"
    path.write_text(f'{ACCOUNTS}\n[channels]\nout = "{channel}"\n{RULES}')

    def intake(config: Config, send: trio.MemorySendChannel[Event], _: Recorder | None) -> Any:
        return FeedingIntake(send, fills_now())

    daemon = Daemon(
        config=load_config(path),
        state_dir=tmp_path / "state",
        intake=intake,
        sd=SdNotifier.from_env({}),
        handle_signals=False,
    )
    async with trio.open_nursery() as nursery:
        await nursery.start(daemon.run)
        while len([x for x in lines_of(stderr) if x.message.startswith(lines)]) < count:  # noqa: ASYNC110 (log lines set no event)
            await trio.sleep(0.02)
        daemon.request_stop()
    return lines_of(stderr)


def messages(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records]


def of_alert(found: list[Line], account: str) -> list[str]:
    """The messages that are about the fill of ``account``."""
    return [x.message for x in found if f"account={account} " in x.message]


async def test_each_stage_logs_one_line_per_alert_with_rule_and_account(
    tmp_path: Path, stderr: io.StringIO
) -> None:
    """Two fills delivered to a real webhook: per alert, exactly one engine, one dispatch and
    one delivery line, each saying rule=filled and the alert's account."""
    with http_receiver() as hook, trio.fail_after(20):
        found = await run_until(
            tmp_path, f"json://{hook.url}/hook", stderr, lines="delivery.sent", count=2
        )
    assert len(hook.requests) == 2
    for account in ("px", "cr"):
        lines = of_alert(found, account)
        assert [m.split()[0] for m in lines] == ["engine.alert", "dispatch.queued", "delivery.sent"]
        assert all(f"rule=filled account={account} " in m for m in lines), lines


class Refusing:
    """An SMTP server that refuses every recipient."""

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, *_: Any
    ) -> str:
        return "550 5.1.1 mailbox unavailable"


@contextmanager
def refusing_smtp() -> Iterator[int]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    controller = Controller(Refusing(), hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield port
    finally:
        controller.stop()


async def test_a_mail_the_server_refuses_is_logged_once_by_alertd_with_the_cause(
    tmp_path: Path, stderr: io.StringIO
) -> None:
    """A real SMTP server refusing the mail: each alert's failed delivery is one
    delivery.retry line naming rule, account and apprise's words, and apprise logs nothing
    of its own."""
    with refusing_smtp() as port, trio.fail_after(30):
        url = (
            f"mailto://alertd@example.com?smtp=127.0.0.1&port={port}"
            "&mode=insecure&to=trader@example.com"
        )
        found = await run_until(tmp_path, url, stderr, lines="delivery.retry", count=2)
    assert [x for x in found if x.logger.startswith("apprise")] == []
    failures = [x for x in found if x.level != "INFO"]
    for account in ("px", "cr"):
        [line] = [x.message for x in failures if f"account={account} " in x.message]
        assert line.startswith(f"delivery.retry rule=filled account={account} channel=out ")
        assert "error=Sending email to " in line, line


def test_a_reload_names_each_rule_whose_state_it_resets_and_why(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Reloading with one rule's window changed and another rule removed logs one
    engine.reset line for each (the changed setting named) and names both in engine.reload."""
    kept = rule("kept", on="order.filled")
    before = [kept, rule("burst", type="rate", count=3, within=60.0), rule("gone")]
    engine = Engine(compile_rules(before, timezone="UTC"), accounts=["px", "cr"])
    engine.start(0.0)
    caplog.set_level(logging.INFO)
    after = [kept, rule("burst", type="rate", count=3, within=120.0)]
    engine.reload(compile_rules(after, timezone="UTC"), accounts=["px"])
    assert [m for m in messages(caplog) if m.startswith("engine.")] == [
        "engine.reset rule=burst why=changed within",
        "engine.reset rule=gone why=removed from the config",
        "engine.reload rules=2 reset=burst,gone accounts=1 removed_accounts=cr",
    ]
