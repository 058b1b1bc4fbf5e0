"""The heartbeat (dead-man's switch) against a real HTTP service on 127.0.0.1 that speaks the
healthchecks.io and Uptime Kuma ping protocols: the requests it makes, when it makes them,
what it logs, and the daemon's health (accounts from the sources, delivery from the outbox)
with the real simulator and a real webhook."""

from __future__ import annotations

import logging
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import attrs
import pytest
import trio
import trio.testing

from alertd import cli, clock
from alertd.check import parse_config
from alertd.config.model import AccountSettings, AuthSettings, Config, Duration, Secret
from alertd.config.secrets import SecretEnvironment
from alertd.daemon.app import Daemon, StartupError
from alertd.daemon.health import AccountsWatch, DaemonHealth, Verdict, reconnect_budget
from alertd.daemon.heartbeat import (
    Heartbeat,
    HeartbeatError,
    check_url,
    detect_kind,
    masked_url,
    ping_request,
)
from alertd.notify.delivery import Delivery
from alertd.notify.recording import RecordingNotifier
from alertd.simulator.server import serve
from alertd.store.database import Database, db_path
from alertd.store.outbox import Notification, Outbox

UUID = "5b5c1f3e-0d8a-4c57-9a3b-7e2f4d6c8a91"  # the check's secret part
TOKEN = "pUsHt0kEn42"  # an Uptime Kuma push token


# -- a ping service ---------------------------------------------------------------------------


@attrs.frozen
class Request:
    method: str
    path: str
    query: dict[str, str]
    body: str

    @property
    def signal(self) -> str:
        """What the request says in the ping protocols: "start", "ok" or "fail"."""
        if self.path.startswith("/api/push/"):  # Uptime Kuma
            return {"up": "ok", "down": "fail"}.get(self.query.get("status", ""), "?")
        last = self.path.rsplit("/", 1)[-1]
        return last if last in ("start", "fail") else "ok"

    @property
    def text(self) -> str:
        """The message: healthchecks.io's request body, Uptime Kuma's msg."""
        return self.query.get("msg", "") if self.path.startswith("/api/push/") else self.body


@attrs.define(eq=False)
class Service:
    """An HTTP service that records every request and answers ``status`` (or, with ``hang``,
    nothing until the test releases it)."""

    port: int = 0
    status: int = 200
    hang: bool = False
    requests: list[Request] = attrs.field(factory=list)
    lock: threading.Lock = attrs.field(factory=threading.Lock)
    release: threading.Event = attrs.field(factory=threading.Event)

    def healthchecks_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/ping/{UUID}"

    def kuma_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api/push/{TOKEN}?status=up&msg=OK&ping="

    def snapshot(self) -> list[Request]:
        with self.lock:
            return list(self.requests)

    def signals(self) -> list[str]:
        return [r.signal for r in self.snapshot()]


@contextmanager
def service() -> Iterator[Service]:
    state = Service()

    class Handler(BaseHTTPRequestHandler):
        def _answer(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length).decode("utf-8", "replace")
            parts = urlsplit(self.path)
            query = dict(parse_qsl(parts.query, keep_blank_values=True))
            with state.lock:
                state.requests.append(Request(self.command, parts.path, query, body))
                status, hang = state.status, state.hang
            if hang:
                state.release.wait(30)
            self.send_response(status)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"OK")

        do_GET = do_POST = _answer

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    state.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield state
    finally:
        state.release.set()
        server.shutdown()
        server.server_close()
        thread.join(5)


def closed_port() -> int:
    """A port on 127.0.0.1 that nothing listens on (connections are refused)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


HEALTHY = Verdict(True, "1/1 accounts connected, 0 notifications pending")


@attrs.define
class Scripted:
    """A ``Health`` whose verdict the test sets; ``error`` makes it raise, ``hang`` hang."""

    verdict: Verdict = HEALTHY
    error: Exception | None = None
    hang: bool = False

    async def __call__(self) -> Verdict:
        if self.hang:
            await trio.sleep_forever()
        if self.error is not None:
            raise self.error
        return self.verdict


@pytest.fixture
def clock_() -> trio.testing.MockClock:
    """Virtual time that jumps only after 50 ms of real idleness, so a ping's thread and the
    loopback service finish before a timer fires (see notes/HELPERS.md)."""
    return trio.testing.MockClock(autojump_threshold=0.05)


async def settle(beat: Heartbeat) -> None:
    """Wait (virtually) until no ping is in flight, so the service has seen every request."""
    while beat.statistics().in_flight:  # noqa: ASYNC110 (a thread's end sets no event)
        await trio.sleep(0.5)


def secret(url: str) -> Secret:
    return Secret(url, source="env:HEARTBEAT_URL")


# -- the protocol -----------------------------------------------------------------------------


def test_healthchecks_requests_follow_the_ping_protocol() -> None:
    """Start and fail append /start and /fail to the URL's path (a trailing slash or a query
    kept as they were), ok pings the URL itself; each POSTs its message as the body."""
    url = f"https://hc-ping.com/{UUID}/?rid=1"
    start = ping_request("healthchecks", url, "start", "alertd started")
    ok = ping_request("healthchecks", url, "ok", "2/2 accounts connected")
    fail = ping_request("healthchecks", url, "fail", "account px disconnected for 2m")
    assert (start.method, start.url) == ("POST", f"https://hc-ping.com/{UUID}/start?rid=1")
    assert (ok.url, ok.body) == (f"https://hc-ping.com/{UUID}?rid=1", b"2/2 accounts connected")
    assert (fail.url, fail.body) == (
        f"https://hc-ping.com/{UUID}/fail?rid=1",
        b"account px disconnected for 2m",
    )
    assert UUID not in repr(fail)


def test_uptime_kuma_pushes_set_status_and_msg_and_keep_other_parameters() -> None:
    """An Uptime Kuma push is a GET whose status= and msg= say up or down and why, replacing
    the ones in the configured URL and keeping the others."""
    url = f"https://kuma.example/api/push/{TOKEN}?status=up&msg=OK&ping="
    down = ping_request("uptime-kuma", url, "fail", "delivery failing: 3 pending")
    assert down.method == "GET" and down.body is None
    parts = urlsplit(down.url)
    assert parts.path == f"/api/push/{TOKEN}"
    assert parse_qsl(parts.query, keep_blank_values=True) == [
        ("ping", ""),
        ("status", "down"),
        ("msg", "delivery failing: 3 pending"),
    ]
    up = ping_request("uptime-kuma", url, "start", "alertd started")
    assert dict(parse_qsl(urlsplit(up.url).query))["status"] == "up"


def test_the_kind_is_detected_from_the_url_unless_given() -> None:
    """ "auto" means Uptime Kuma for a status= query or an /api/push/ path, healthchecks.io
    otherwise; an explicit kind wins."""
    assert detect_kind(f"https://hc-ping.com/{UUID}") == "healthchecks"
    assert detect_kind(f"https://k.example/api/push/{TOKEN}") == "uptime-kuma"
    assert detect_kind("https://k.example/push?status=up&msg=OK") == "uptime-kuma"
    assert detect_kind(f"https://k.example/api/push/{TOKEN}", "healthchecks") == "healthchecks"


def test_a_masked_url_shows_scheme_and_host_only() -> None:
    """Logs name the service by scheme and host; the path and query (the secret) never."""
    assert masked_url(f"https://hc-ping.com/{UUID}") == "https://hc-ping.com/***"
    assert masked_url(f"http://127.0.0.1:8080/api/push/{TOKEN}?status=up") == (
        "http://127.0.0.1:8080/***"
    )


def test_the_url_resolves_like_a_channel_url_and_errors_name_the_reference() -> None:
    """The loader resolves {env:...} references into a Secret that never prints; an unset one
    is a one-line problem at its key naming the reference, and a resolved value that is not an
    http(s) URL is a HeartbeatError naming the reference, not the value."""
    env = SecretEnvironment(environ={"HC": UUID, "BAD": f"ftp://x/{UUID}"})

    def parsed(url: str) -> tuple[Config | None, list[str]]:
        config, problems = parse_config(f'[daemon.heartbeat]\nurl = "{url}"\n', secrets=env)
        return config, [f"{p.path}:{p.line}: {p.message}" for p in problems]

    config, problems = parsed("https://hc-ping.com/{env:HC}")
    assert config is not None and config.daemon.heartbeat is not None, problems
    url = config.daemon.heartbeat.url
    assert url.reveal() == f"https://hc-ping.com/{UUID}" and UUID not in repr(config)
    assert check_url(url) is url
    _, problems = parsed("https://hc-ping.com/{env:MISSING}")
    assert len(problems) == 1 and problems[0].startswith("daemon.heartbeat.url:2: ")
    assert "environment variable MISSING is not set" in problems[0]
    config, _ = parsed("{env:BAD}")
    assert config is not None and config.daemon.heartbeat is not None
    with pytest.raises(HeartbeatError, match="env:BAD holds is not an http") as info:
        check_url(config.daemon.heartbeat.url)
    assert UUID not in str(info.value)


def test_check_refuses_an_unset_reference_in_the_url(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """`alertd check` of a config whose heartbeat URL names an unset variable exits 1 with one
    line naming the key and the reference, no traceback; --no-secrets accepts it."""
    monkeypatch.delenv("HEARTBEAT_UNSET", raising=False)
    path = tmp_path / "alertd.toml"
    path.write_text('[daemon.heartbeat]\nurl = "https://hc-ping.com/{env:HEARTBEAT_UNSET}"\n')
    assert cli.main(["check", "-c", str(path)]) == 1
    out = capsys.readouterr()
    text = out.out + out.err
    assert "daemon.heartbeat.url" in text and "HEARTBEAT_UNSET is not set" in text
    assert "Traceback" not in text
    assert cli.main(["check", "--no-secrets", "-c", str(path)]) == 0


def test_the_config_takes_a_heartbeat_table_and_refuses_a_literal_url() -> None:
    """[daemon.heartbeat] parses with its defaults; a URL with no reference is refused at its
    line without being echoed."""
    env = SecretEnvironment(environ={"HC": UUID})
    config, problems = parse_config(
        '[daemon.heartbeat]\nurl = "https://hc-ping.com/{env:HC}"\n', secrets=env
    )
    assert config is not None and problems == []
    beat = config.daemon.heartbeat
    assert beat is not None
    assert (beat.kind, beat.interval, beat.timeout) == ("auto", 60.0, 10.0)
    _, problems = parse_config(f'[daemon.heartbeat]\nurl = "https://hc-ping.com/{UUID}"\n')
    assert [(p.path, p.line) for p in problems] == [("daemon.heartbeat.url", 2)]
    assert "reference" in problems[0].message and UUID not in problems[0].message


# -- the task, on virtual time ----------------------------------------------------------------


async def test_start_then_one_ping_every_interval_while_healthy(
    clock_: trio.testing.MockClock,
) -> None:
    """alertd says /start once, pings at its first health check, then once per interval."""
    health = Scripted()
    with service() as svc, trio.fail_after(600):
        beat = Heartbeat(url=secret(svc.healthchecks_url()), health=health, interval=60.0)
        async with trio.open_nursery() as nursery:
            await nursery.start(beat.run)
            await trio.sleep(5 + 60 * 3 + 2)  # checks at 5, 10, ...; pings at 5, 65, 125, 185
            await settle(beat)
            nursery.cancel_scope.cancel()
    assert svc.signals() == ["start", "ok", "ok", "ok", "ok"]
    first = svc.snapshot()
    assert first[0].path == f"/ping/{UUID}/start" and first[0].body == "alertd started"
    assert first[1].path == f"/ping/{UUID}" and first[1].method == "POST"
    assert first[1].body == "1/1 accounts connected, 0 notifications pending"
    stats = beat.statistics()
    assert (stats.sent, stats.failed, stats.skipped, stats.healthy) == (5, 0, 0, True)


async def test_a_turn_for_the_worse_is_a_fail_at_once_and_recovery_pings_at_once(
    clock_: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    """Unhealthy: /fail with the reason at the next check (not the next interval), repeated
    every interval while it lasts; healthy again: a ping at the next check."""
    caplog.set_level(logging.INFO, logger="alertd.daemon.heartbeat")
    health = Scripted()
    with service() as svc, trio.fail_after(600):
        beat = Heartbeat(url=secret(svc.healthchecks_url()), health=health, interval=60.0)
        async with trio.open_nursery() as nursery:
            await nursery.start(beat.run)
            await trio.sleep(12)
            health.verdict = Verdict(False, "account px disconnected for 1m 12s")
            await trio.sleep(6)  # the check at 15 s
            await settle(beat)
            assert svc.signals() == ["start", "ok", "fail"]
            await trio.sleep(60)  # still unhealthy: one more fail an interval later
            await settle(beat)
            assert svc.signals() == ["start", "ok", "fail", "fail"]
            health.verdict = HEALTHY
            await trio.sleep(5)
            await settle(beat)
            nursery.cancel_scope.cancel()
    assert svc.signals() == ["start", "ok", "fail", "fail", "ok"]
    fails = [r for r in svc.snapshot() if r.signal == "fail"]
    assert {f.body for f in fails} == {"account px disconnected for 1m 12s"}
    assert fails[0].path == f"/ping/{UUID}/fail"
    assert beat.statistics().fails == 2
    words = [r.getMessage().split()[0] for r in caplog.records]
    assert words.count("heartbeat.unhealthy") == 1 and words.count("heartbeat.healthy") == 1


async def test_uptime_kuma_gets_up_and_down_pushes(clock_: trio.testing.MockClock) -> None:
    """With a push URL, healthy is status=up and unhealthy status=down with the reason as msg."""
    health = Scripted()
    with service() as svc, trio.fail_after(600):
        beat = Heartbeat(
            url=secret(svc.kuma_url()), health=health, kind=detect_kind(svc.kuma_url())
        )
        async with trio.open_nursery() as nursery:
            await nursery.start(beat.run)
            await trio.sleep(7)
            health.verdict = Verdict(False, "delivery failing: 2 pending")
            await trio.sleep(5)
            await settle(beat)
            nursery.cancel_scope.cancel()
    requests = svc.snapshot()
    assert [r.method for r in requests] == ["GET"] * 3
    assert [(r.query["status"], r.text) for r in requests] == [
        ("up", "alertd started"),
        ("up", "1/1 accounts connected, 0 notifications pending"),
        ("down", "delivery failing: 2 pending"),
    ]


async def test_an_unreachable_service_is_logged_once_per_outage_with_its_cause(
    clock_: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    """Refused connections, then HTTP errors, are each one warning naming the cause and the
    masked URL for the whole outage; the first ping that gets through says so once."""
    caplog.set_level(logging.INFO, logger="alertd.daemon.heartbeat")
    refused = f"http://127.0.0.1:{closed_port()}/ping/{UUID}"
    with trio.fail_after(600):
        beat = Heartbeat(url=secret(refused), health=Scripted(), interval=10.0)
        async with trio.open_nursery() as nursery:
            await nursery.start(beat.run)
            await trio.sleep(45)
            await settle(beat)
            nursery.cancel_scope.cancel()
    assert beat.statistics().failed >= 4 and beat.statistics().sent == 0
    warnings = [r.getMessage() for r in caplog.records if "heartbeat.unreachable" in r.msg]
    assert len(warnings) == 1
    assert "cause=connection refused" in warnings[0] and "http://127.0.0.1:" in warnings[0]

    caplog.clear()
    with service() as svc, trio.fail_after(600):
        svc.status = 503
        beat = Heartbeat(url=secret(svc.healthchecks_url()), health=Scripted(), interval=10.0)
        async with trio.open_nursery() as nursery:
            await nursery.start(beat.run)
            await trio.sleep(25)
            svc.status = 200
            await trio.sleep(12)
            await settle(beat)
            nursery.cancel_scope.cancel()
    messages = [r.getMessage() for r in caplog.records]
    unreachable = [m for m in messages if m.startswith("heartbeat.unreachable")]
    assert len(unreachable) == 1 and "cause=HTTP 503" in unreachable[0]
    assert [m for m in messages if m.startswith("heartbeat.reachable")] == [
        f"heartbeat.reachable url=http://127.0.0.1:{svc.port}/*** (was: HTTP 503)"
    ]
    assert not any(UUID in m for m in messages)


async def test_a_hung_service_gets_one_request_and_later_pings_are_skipped(
    clock_: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    """While a ping hangs, the next ones are skipped, not piled up (one request at the
    service, one warning); once it ends, pings go out again."""
    caplog.set_level(logging.INFO, logger="alertd.daemon.heartbeat")
    with service() as svc, trio.fail_after(600):
        svc.hang = True
        beat = Heartbeat(
            url=secret(svc.healthchecks_url()), health=Scripted(), interval=10.0, timeout=10.0
        )
        async with trio.open_nursery() as nursery:
            await nursery.start(beat.run)
            await trio.sleep(60)  # pings due at 5, 15, ... find the start still in its thread
            assert len(svc.snapshot()) == 1
            stats = beat.statistics()
            assert stats.in_flight and stats.skipped >= 5 and stats.sent == 0
            svc.hang = False
            svc.release.set()
            while beat.statistics().sent == 0:  # noqa: ASYNC110 (a thread's end sets no event)
                await trio.sleep(1)
            nursery.cancel_scope.cancel()
    assert svc.signals()[0] == "start" and svc.signals()[1:] == ["ok"] * (len(svc.signals()) - 1)
    messages = [r.getMessage() for r in caplog.records]
    assert sum(m.startswith("heartbeat.skipped") for m in messages) == 1
    unreachable = [m for m in messages if m.startswith("heartbeat.unreachable")]
    assert len(unreachable) == 1 and "no answer within 10s" in unreachable[0]


async def test_a_health_check_that_fails_or_hangs_is_unhealthy(
    clock_: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    """A health check that raises is a fail naming the error (its traceback logged once);
    one that does not answer within the timeout is a fail saying so."""
    health = Scripted(error=RuntimeError("bug"))
    with service() as svc, trio.fail_after(600):
        beat = Heartbeat(
            url=secret(svc.healthchecks_url()), health=health, interval=60.0, timeout=3.0
        )
        async with trio.open_nursery() as nursery:
            await nursery.start(beat.run)
            await trio.sleep(70)
            health.error, health.hang = None, True
            await trio.sleep(60)  # no change of health: the next fail is an interval later
            await settle(beat)
            nursery.cancel_scope.cancel()
    fails = [r.text for r in svc.snapshot() if r.signal == "fail"]
    assert fails[:2] == ["alertd's health check failed (RuntimeError)"] * 2
    assert fails[2].startswith("alertd's health check did not answer within 3s")
    logged = [r for r in caplog.records if r.getMessage().startswith("heartbeat.health_failed")]
    assert len(logged) == 1 and logged[0].exc_info is not None


# -- the daemon's health ----------------------------------------------------------------------


@attrs.frozen
class Up:
    connected: bool


def account(name: str, **kw: Any) -> AccountSettings:
    base: dict[str, Any] = {
        "exchange": "piexgo",
        "url": "ws://127.0.0.1:9/piexgo/ws",
        "backoff_max": Duration(30.0),
        "connect_timeout": Duration(10.0),
    }
    return AccountSettings(name=name, **(base | kw))


def test_an_account_down_longer_than_its_reconnect_budget_is_unhealthy() -> None:
    """Down within backoff_max + connect_timeout is reconnecting; longer is a problem naming
    the account and how long; a reconnect starts the count afresh."""
    watch = AccountsWatch()
    accounts = [account("px"), account("cr")]
    assert reconnect_budget(accounts[0]) == 40.0
    down = {"px": Up(False), "cr": Up(True)}
    assert watch.problems(accounts, down, 100.0) == ([], 1)
    assert watch.problems(accounts, down, 140.0) == ([], 1)
    problems, connected = watch.problems(accounts, down, 141.5)
    assert connected == 1
    assert problems == [
        "account px disconnected for 41s (reconnect budget 40s): alertd cannot see it"
    ]
    assert watch.problems(accounts, {"px": Up(True), "cr": Up(True)}, 150.0) == ([], 2)
    assert watch.problems(accounts, down, 160.0) == ([], 1)  # down again: a new count
    assert watch.problems(accounts, down, 195.0) == ([], 1)


def test_accounts_not_started_disabled_or_removed_are_counted_as_they_should() -> None:
    """An enabled account the sources have not started is down from the first check; a
    disabled one is ignored; a login frame adds login_timeout to the budget; a removed
    account is forgotten, so added back it starts a new count."""
    watch = AccountsWatch()
    login = account("lg", auth=AuthSettings(login_frame="{}", login_timeout=Duration(5.0)))
    assert reconnect_budget(login) == 45.0
    off = account("off", enabled=False)
    assert watch.problems([login, off], {}, 0.0) == ([], 0)
    assert watch.problems([login, off], {}, 46.0)[0][0].startswith("account lg disconnected")
    assert watch.problems([off], {}, 50.0) == ([], 0)
    assert watch.problems([login, off], {}, 60.0) == ([], 0)


@attrs.frozen
class NoSources:
    accounts: dict[str, Up] = attrs.field(factory=dict)

    def statistics(self) -> NoSources:
        return self


async def test_a_notification_undelivered_too_long_is_unhealthy(tmp_path: Path) -> None:
    """An outbox row pending for longer than channel_failing_after is a problem naming the
    channels with pending rows; one that is younger, or held for quiet hours, is not."""
    db = Database(db_path(tmp_path))
    try:
        outbox = Outbox(db)
        delivery = Delivery(Config(), outbox, RecordingNotifier())
        health = DaemonHealth(
            accounts=list, sources=NoSources(), outbox=outbox, delivery=delivery,
            channel_failing_after=600.0,
        )  # fmt: skip
        now = clock.wall()

        def note(key: str, channel: str, created: float, **kw: Any) -> Notification:
            return Notification(
                key=key, channel=channel, url_index=0, title="t", body="b", created=created, **kw
            )

        await outbox.enqueue([note("fresh", "phone", now - 60)])
        await outbox.enqueue([note("held", "phone", now - 3600, not_before=now + 600)])
        assert await health() == Verdict(True, "0/0 accounts connected, 2 notifications pending")
        await outbox.enqueue([note("old", "desk", now - 700)])
        verdict = await health()
        assert not verdict.healthy
        assert verdict.reason.startswith("delivery failing: a notification undelivered for 11m")
        assert "(pending: desk 1, phone 2; 0 sends failed since start)" in verdict.reason
    finally:
        db.close()


# -- the daemon, on real time -----------------------------------------------------------------

DAEMON = """
[daemon]
drain_timeout = "1s"

[daemon.heartbeat]
url = "{env:HEARTBEAT_URL}"
interval = "1s"
timeout = "2s"
channel_failing_after = "2s"

[[accounts]]
name = "main"
exchange = "piexgo"
url = "ws://127.0.0.1:{port}/piexgo/ws"
streams = ["pinfo"]
connect_timeout = "1s"
backoff_initial = "100ms"
backoff_max = "500ms"

[channels]
hook = "json://127.0.0.1:{hook}/hook"

[dispatch]
default_channel = "hook"
retry_initial = "200ms"
retry_max = "500ms"
"""

CONNECTED_RULE = """
[[rules]]
name = "up"
on = "stream.connected"
"""


def daemon_config(port: int, hook: int, rules: str = "") -> Config:
    config, problems = parse_config(
        DAEMON.replace("{port}", str(port)).replace("{hook}", str(hook)) + rules
    )
    assert config is not None, problems
    return config


async def wait_for(what: str, condition: Any) -> None:
    """Poll ``condition`` until it holds; Cancelled (so the test fails) after 15 s."""
    with trio.fail_after(15):
        while not condition():  # noqa: ASYNC110 (the service is a thread, it has no event)
            await trio.sleep(0.05)


@pytest.mark.slow
async def test_the_daemon_fails_while_the_exchange_is_away_and_pings_after(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With the simulator refusing connections for longer than the account's reconnect
    budget, the daemon's heartbeat says /fail naming the account; once it reconnects, the
    pings come back."""
    with service() as svc, service() as hook, trio.fail_after(60):
        monkeypatch.setenv("HEARTBEAT_URL", svc.healthchecks_url())
        async with trio.open_nursery() as nursery:
            sim = await nursery.start(partial(serve, port=0, seed=1))
            daemon = Daemon(
                config=daemon_config(sim.port, hook.port),
                state_dir=tmp_path,
                handle_signals=False,
            )
            await nursery.start(daemon.run)
            await wait_for("a ping", lambda: svc.signals()[:2] == ["start", "ok"])
            sim.refuse_for(3.5)
            await wait_for("a fail", lambda: "fail" in svc.signals())
            fail = next(r for r in svc.snapshot() if r.signal == "fail")
            assert fail.body.startswith("account main disconnected for ")
            assert "alertd cannot see it" in fail.body
            await wait_for("recovery", lambda: svc.signals()[-1] == "ok")
            daemon.request_stop()
            await daemon.stopped.wait()
            nursery.cancel_scope.cancel()
    assert all(r.signal != "start" for r in svc.snapshot()[1:])


@pytest.mark.slow
async def test_the_daemon_fails_while_a_channel_fails_and_pings_after(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An alert the webhook keeps refusing makes the heartbeat say /fail ("delivery failing",
    naming the channel) once it has waited channel_failing_after; when the webhook takes it,
    the pings come back."""
    with service() as svc, service() as hook, trio.fail_after(60):
        hook.status = 500
        monkeypatch.setenv("HEARTBEAT_URL", svc.kuma_url())
        async with trio.open_nursery() as nursery:
            sim = await nursery.start(partial(serve, port=0, seed=1))
            config = daemon_config(sim.port, hook.port, CONNECTED_RULE)
            daemon = Daemon(config=config, state_dir=tmp_path, handle_signals=False)
            await nursery.start(daemon.run)
            await wait_for("a fail", lambda: "fail" in svc.signals())
            fail = next(r for r in svc.snapshot() if r.signal == "fail")
            assert fail.query["status"] == "down"
            assert fail.text.startswith("delivery failing: a notification undelivered for ")
            assert "pending: hook 1" in fail.text
            assert len(hook.snapshot()) >= 2  # the webhook was tried, and refused
            hook.status = 200
            await wait_for("recovery", lambda: svc.signals()[-1] == "ok")
            daemon.request_stop()
            await daemon.stopped.wait()
            nursery.cancel_scope.cancel()


async def test_a_url_that_is_not_http_refuses_to_start(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A heartbeat URL whose reference holds no http(s) URL stops the daemon from starting,
    with an error naming the reference and not its value."""
    monkeypatch.setenv("HEARTBEAT_URL", f"ftp://127.0.0.1/{UUID}")
    daemon = Daemon(
        config=daemon_config(closed_port(), closed_port()),
        state_dir=tmp_path,
        notifier=RecordingNotifier(),
        handle_signals=False,
    )
    with trio.fail_after(15), pytest.RaisesGroup(StartupError, flatten_subgroups=True) as info:
        await daemon.run()
    message = str(info.value.exceptions[0])
    assert "env:HEARTBEAT_URL holds is not an http" in message and UUID not in message
