"""Real processes for the integration tests: the exchange simulator (``alertd simulate``), the
daemon (``alertd run``), a webhook receiver for apprise's ``json://`` POSTs, and the systemd
side of sd_notify (a datagram socket the test owns).

Everything is plain threads and subprocesses, so the test bodies are ordinary sync code. Every
wait is bounded (``wait_until``) and every process is killed in teardown, whatever the test did.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import IO, Any, TypeVar

import attrs
import pytest

T = TypeVar("T")

START_TIMEOUT = 20.0  # seconds for a process to print its first useful line (CI is slow)
POLL = 0.02  # seconds between checks in wait_until
# Environment a developer's shell or a systemd unit might leak into the child.
LEAKY_ENV = (
    "NOTIFY_SOCKET",
    "WATCHDOG_USEC",
    "WATCHDOG_PID",
    "STATE_DIRECTORY",
    "CREDENTIALS_DIRECTORY",
    "JOURNAL_STREAM",
    "LISTEN_FDS",
)


def wait_until(
    check: Callable[[], T | None], timeout: float, what: str, *, dump: Callable[[], str] = str
) -> T:
    """Poll ``check`` until it returns something truthy (returned) or ``timeout`` passes
    (AssertionError naming ``what``, plus ``dump()`` to show what the processes said)."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout:.1f}s waiting for {what}\n{dump()}")
        time.sleep(POLL)


# -- processes ------------------------------------------------------------------------------


class Proc:
    """A child process whose stdout and stderr are read line by line by threads, kept in memory
    (for assertions) and copied to ``log_path`` (for a person reading a failed run)."""

    def __init__(self, name: str, args: list[str], env: dict[str, str], log_path: Path) -> None:
        self.name = name
        self.args = args
        self.stdout: list[str] = []
        self.stderr: list[str] = []
        self._lock = threading.Lock()
        self._log = log_path.open("a", encoding="utf-8")
        self._log.write(f"$ {' '.join(args)}\n")
        self.proc = subprocess.Popen(
            args,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            encoding="utf-8",
            errors="replace",
        )
        assert self.proc.stdout is not None and self.proc.stderr is not None
        self._threads = [
            threading.Thread(target=self._pump, args=(self.proc.stdout, self.stdout), daemon=True),
            threading.Thread(target=self._pump, args=(self.proc.stderr, self.stderr), daemon=True),
        ]
        for thread in self._threads:
            thread.start()

    def _pump(self, pipe: IO[str], into: list[str]) -> None:
        for line in pipe:
            with self._lock:
                into.append(line.rstrip("\n"))
                self._log.write(f"[{self.name}] {line}")
                self._log.flush()

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def returncode(self) -> int | None:
        return self.proc.poll()

    def lines(self, stream: str = "stderr") -> list[str]:
        with self._lock:
            return list(self.stderr if stream == "stderr" else self.stdout)

    def matches(self, pattern: str, stream: str = "stderr") -> list[re.Match[str]]:
        regex = re.compile(pattern)
        return [m for line in self.lines(stream) if (m := regex.search(line))]

    def wait_for_line(
        self, pattern: str, timeout: float, *, stream: str = "stderr", count: int = 1
    ) -> re.Match[str]:
        """The ``count``-th line matching ``pattern``; fails early if the process exits."""

        def found() -> re.Match[str] | None:
            hits = self.matches(pattern, stream)
            if len(hits) >= count:
                return hits[count - 1]
            if self.returncode is not None:
                self.join_output()
                hits = self.matches(pattern, stream)
                if len(hits) >= count:
                    return hits[count - 1]
                raise AssertionError(
                    f"{self.name} exited ({self.returncode}) before printing {pattern!r}"
                    f"\n{self.tail()}"
                )
            return None

        return wait_until(found, timeout, f"{self.name}: {pattern!r} x{count}", dump=self.tail)

    def tail(self, n: int = 40) -> str:
        lines = self.lines("stderr")[-n:]
        return f"--- last {len(lines)} stderr lines of {self.name}:\n" + "\n".join(lines)

    def send_signal(self, signum: signal.Signals) -> None:
        self.proc.send_signal(signum)

    def wait(self, timeout: float) -> int:
        """The exit code; AssertionError (with the stderr tail) if it does not exit in time."""
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(
                f"{self.name} still running {timeout:.1f}s later\n{self.tail()}"
            ) from None
        self.join_output()
        return code

    def join_output(self) -> None:
        for thread in self._threads:
            thread.join(5)

    def close(self) -> None:
        """Kill (if still running), reap, and close every pipe and file."""
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(10)
        self.join_output()
        for pipe in (self.proc.stdout, self.proc.stderr):
            if pipe is not None:
                pipe.close()
        self._log.close()


def child_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in LEAKY_ENV}
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env


def alertd_args(*args: str) -> list[str]:
    return [sys.executable, "-m", "alertd", *args]


@attrs.define(eq=False)
class Sim:
    """A running ``alertd simulate``."""

    proc: Proc
    port: int

    def url(self, exchange: str) -> str:
        return f"ws://127.0.0.1:{self.port}/{exchange}/ws"

    def connects(self, exchange: str | None = None) -> int:
        """Connections the simulator accepted (from its log), of one exchange or all."""
        which = exchange or r"\w+"
        return len(self.proc.matches(rf"simulator\.connected exchange={which} "))


class Procs:
    """Starts processes for one test and kills every one of them at teardown."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self.log_path = tmp_path / "processes.log"
        self._procs: list[Proc] = []

    def start(self, name: str, args: list[str], env: dict[str, str] | None = None) -> Proc:
        proc = Proc(name, args, env or child_env(), self.log_path)
        self._procs.append(proc)
        return proc

    def simulator(
        self, scenario: str = "normal", *, rate: float | None = None, seed: int = 1
    ) -> Sim:
        """``alertd simulate --port 0``; returns once it printed its listening line."""
        args = alertd_args("simulate", "--port", "0", "--scenario", scenario, "--seed", str(seed))
        if rate is not None:
            args += ["--rate", str(rate)]
        proc = self.start(f"simulate-{scenario}", args)
        match = proc.wait_for_line(
            r"^simulator listening on ws://127\.0\.0\.1:(\d+) ", START_TIMEOUT, stream="stdout"
        )
        return Sim(proc=proc, port=int(match.group(1)))

    def daemon(
        self,
        config: Path,
        *,
        state_dir: Path,
        notify: NotifySocket | None = None,
        record: Path | None = None,
        env: dict[str, str] | None = None,
        name: str = "alertd-run",
    ) -> Proc:
        """``alertd run``, not waited on (tests wait for READY=1 or a log line)."""
        args = alertd_args("run", "-c", str(config), "--state-dir", str(state_dir))
        if record is not None:
            args += ["--record", str(record)]
        extra = dict(env or {})
        if notify is not None:
            extra["NOTIFY_SOCKET"] = notify.env_value
        return self.start(name, args, child_env(**extra))

    def run(self, *args: str, timeout: float = 30.0) -> subprocess.CompletedProcess[str]:
        """A short-lived ``alertd`` command, to completion."""
        return subprocess.run(
            alertd_args(*args),
            env=child_env(),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def close(self) -> None:
        for proc in reversed(self._procs):
            proc.close()


@pytest.fixture
def procs(tmp_path: Path) -> Iterator[Procs]:
    registry = Procs(tmp_path)
    try:
        yield registry
    finally:
        registry.close()


@pytest.fixture
def sim(procs: Procs) -> Sim:
    """The simulator with normal activity, a little faster than by default so tests are short."""
    return procs.simulator("normal", rate=4.0)


# -- the webhook receiver -------------------------------------------------------------------


@attrs.frozen
class Post:
    at: float  # time.monotonic() when the request arrived
    path: str
    body: dict[str, Any]
    content_type: str
    status: int  # what the receiver answered (0: it hung and never answered)

    @property
    def title(self) -> str:
        return str(self.body.get("title", ""))

    @property
    def message(self) -> str:
        return str(self.body.get("message", ""))


@attrs.define(eq=False)
class Receiver:
    """An HTTP server on 127.0.0.1 that records every POST. ``status`` is what it answers;
    ``delay`` makes it slow but answering; ``hang`` makes it never answer (until teardown)."""

    port: int = 0
    status: int = 200
    delay: float = 0.0
    hang: bool = False
    posts: list[Post] = attrs.field(factory=list)
    lock: threading.Lock = attrs.field(factory=threading.Lock)
    release: threading.Event = attrs.field(factory=threading.Event)

    def url(self, path: str = "alerts") -> str:
        return f"json://127.0.0.1:{self.port}/{path}"

    def snapshot(self) -> list[Post]:
        with self.lock:
            return list(self.posts)

    def delivered(self) -> list[Post]:
        """POSTs answered 200: what a person actually received."""
        return [p for p in self.snapshot() if p.status == 200]


@contextmanager
def http_server(handler: type[BaseHTTPRequestHandler]) -> Iterator[int]:
    """``handler`` serving on 127.0.0.1 (a port of its own, yielded) from a thread, until the
    block ends."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    state = Receiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            raw = self.rfile.read(length)
            try:
                body = json.loads(raw)
            except ValueError:
                body = {"raw": raw.decode("utf-8", "replace")}
            at = time.monotonic()
            kind = self.headers.get("Content-Type", "")
            with state.lock:
                status, delay, hang = state.status, state.delay, state.hang
            if hang:
                with state.lock:
                    state.posts.append(Post(at, self.path, body, kind, 0))
                state.release.wait(60)
                return
            if delay:
                time.sleep(delay)
            with state.lock:
                # Recorded before the answer is written, so a test that sees a 200 here knows
                # the sender is about to read it.
                state.posts.append(Post(at, self.path, body, kind, status))
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    with http_server(Handler) as port:
        state.port = port
        try:
            yield state
        finally:
            state.release.set()  # a hung request ends, so the server can shut down


# -- sd_notify ------------------------------------------------------------------------------


@attrs.frozen
class Notice:
    at: float  # time.monotonic()
    fields: dict[str, str]


@attrs.define(eq=False)
class NotifySocket:
    """The systemd side of sd_notify: an abstract AF_UNIX datagram socket (as systemd hands
    out), read by a thread into ``notices``."""

    sock: socket.socket
    env_value: str
    notices: list[Notice] = attrs.field(factory=list)
    lock: threading.Lock = attrs.field(factory=threading.Lock)
    stop: threading.Event = attrs.field(factory=threading.Event)

    def snapshot(self) -> list[Notice]:
        with self.lock:
            return list(self.notices)

    def with_field(self, key: str, value: str | None = None) -> list[Notice]:
        return [
            n
            for n in self.snapshot()
            if key in n.fields and (value is None or n.fields[key] == value)
        ]

    def wait_for(
        self,
        key: str,
        value: str | None = None,
        *,
        timeout: float,
        after: float = 0.0,
        status: str | None = None,
        dump: Callable[[], str] = str,
    ) -> Notice:
        """The first notice with ``key`` (=``value``) received after ``after`` (monotonic),
        whose STATUS contains ``status`` if given."""

        def found() -> Notice | None:
            for n in self.with_field(key, value):
                if n.at >= after and (status is None or status in n.fields.get("STATUS", "")):
                    return n
            return None

        want = f"{key}={value or '*'}" + (f" with STATUS~{status!r}" if status else "")

        def explain() -> str:
            seen = "\n".join(str(n.fields) for n in self.snapshot()[-15:])
            return f"--- last notices:\n{seen}\n{dump()}"

        return wait_until(found, timeout, f"sd_notify {want}", dump=explain)

    def _read(self) -> None:
        while not self.stop.is_set():
            try:
                data = self.sock.recv(65536)
            except TimeoutError:
                continue
            except OSError:
                return
            fields = dict(
                line.split("=", 1) for line in data.decode("utf-8").split("\n") if "=" in line
            )
            with self.lock:
                self.notices.append(Notice(time.monotonic(), fields))


@pytest.fixture
def notify() -> Iterator[NotifySocket]:
    name = f"alertd-it-{uuid.uuid4().hex}"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind("\0" + name)
    sock.settimeout(0.1)
    state = NotifySocket(sock=sock, env_value="@" + name)
    thread = threading.Thread(target=state._read, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        state.stop.set()
        thread.join(5)
        sock.close()


# -- configs --------------------------------------------------------------------------------

FILLED_RULE = """
[[rules]]
name = "filled"
on = "order.filled"
key = "{{ account }}/{{ order_id }}"
title = "filled {{ account }} {{ order_id }}"
message = "{{ side }} {{ amount }} {{ symbol }} filled at {{ price }}"
"""


def config_text(
    *,
    sim_port: int,
    hook: str,
    rules: str = FILLED_RULE,
    daemon: str = "",
    drain_timeout: str = "10s",
    dispatch: str = "",
    piexgo_streams: str = '["pinfo"]',
    cryptology_streams: str = '["account"]',
) -> str:
    """A config with one Piexgo and one Cryptology account on the simulator at ``sim_port``,
    one webhook channel (the default), fast retries, and ``rules``."""
    return f"""\
[daemon]
state_dir = "/nonexistent/overridden-by-state-dir"
log_level = "info"
drain_timeout = "{drain_timeout}"
{daemon}
[[accounts]]
name = "px"
exchange = "piexgo"
url = "ws://127.0.0.1:{sim_port}/piexgo/ws"
streams = {piexgo_streams}
backoff_initial = "200ms"
backoff_max = "1s"

[[accounts]]
name = "cr"
exchange = "cryptology"
url = "ws://127.0.0.1:{sim_port}/cryptology/ws"
streams = {cryptology_streams}
backoff_initial = "200ms"
backoff_max = "1s"

[channels]
hook = "{hook}"

[dispatch]
default_channel = "hook"
retry_initial = "200ms"
retry_max = "1s"
{dispatch}
{rules}"""


# -- a websocket server that plays a capture ---------------------------------------------------


@attrs.define(eq=False)
class CaptureServer:
    """A real websocket server on 127.0.0.1 (port 0), in a thread of its own, that sends each
    path's frames in order, each ``delay`` seconds after the connection was accepted (the
    capture's own spacing); what the client sends is read and ignored. ``connections`` counts
    the connections accepted per path."""

    frames: dict[str, list[tuple[float, str]]]  # path -> (delay, frame text)
    port: int = 0
    connections: dict[str, int] = attrs.field(factory=dict)
    _ready: threading.Event = attrs.field(factory=threading.Event)
    _token: Any = None
    _scope: Any = None
    _thread: threading.Thread | None = None

    def url(self, path: str) -> str:
        return f"ws://127.0.0.1:{self.port}{path}"

    def start(self) -> None:
        self._thread = threading.Thread(target=self._main, daemon=True)
        self._thread.start()
        assert self._ready.wait(10), "the capture server did not start"

    def stop(self) -> None:
        import trio

        if self._thread is not None and self._thread.is_alive():
            trio.from_thread.run_sync(self._scope.cancel, trio_token=self._token)
            self._thread.join(10)

    def _main(self) -> None:
        import trio
        import trio_websocket

        async def handler(request: trio_websocket.WebSocketRequest) -> None:
            ws = await request.accept()
            path = request.path
            self.connections[path] = self.connections.get(path, 0) + 1
            start = trio.current_time()
            # A second connection to a path gets nothing: the capture was sent once.
            frames = self.frames.get(path, []) if self.connections[path] == 1 else []
            try:
                async with trio.open_nursery() as nursery:

                    async def drain() -> None:
                        while True:
                            await ws.get_message()

                    nursery.start_soon(drain)
                    for delay, frame in frames:
                        await trio.sleep_until(start + delay)
                        await ws.send_message(frame)
            except* trio_websocket.ConnectionClosed:
                pass  # the daemon stopped

        async def main() -> None:
            self._token = trio.lowlevel.current_trio_token()
            with trio.CancelScope() as self._scope:
                async with trio.open_nursery() as nursery:
                    server = await nursery.start(
                        trio_websocket.serve_websocket, handler, "127.0.0.1", 0, None
                    )
                    self.port = server.port
                    self._ready.set()

        trio.run(main)
